"""Why a use case refused: a stable `code`, a Russian message, and what the API needs (status, field)."""

from __future__ import annotations

from identity.domain.errors import DomainError, Violation


class ApplicationError(DomainError):
    status: int = 400
    title: str = "Запрос отклонён"

    def __init__(self, message: str, *, violations: list[Violation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []
        self.headers: dict[str, str] = {}


class EmailTaken(ApplicationError):
    status, code, title = 409, "email_taken", "Адрес уже используется"

    def __init__(self, field: str = "email") -> None:
        message = "Этот адрес e-mail уже используется другой учётной записью"
        super().__init__(message, violations=[Violation(field, self.code, message)])


class InvalidCredentials(ApplicationError):
    status, code, title = 401, "invalid_credentials", "Вход не выполнен"

    def __init__(self) -> None:
        super().__init__("Неверный e-mail или пароль")


class TooManyAttempts(ApplicationError):
    status, code, title = 429, "too_many_attempts", "Слишком много попыток"

    def __init__(self, retry_after_s: int) -> None:
        minutes = max(1, -(-retry_after_s // 60))
        super().__init__(f"Слишком много неудачных попыток. Повторите через {minutes} мин.")
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}


class NotAuthenticated(ApplicationError):
    status, code, title = 401, "not_authenticated", "Требуется вход"

    def __init__(self, message: str = "Войдите в личный кабинет") -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": "Bearer"}


class InvalidAccessToken(NotAuthenticated):
    code = "invalid_token"

    def __init__(self) -> None:
        super().__init__("Сеанс недействителен. Войдите снова")


class SessionRevoked(NotAuthenticated):
    code = "session_revoked"

    def __init__(self) -> None:
        super().__init__("Сеанс завершён. Войдите снова")


class InvalidRefreshToken(ApplicationError):
    status, code, title = 401, "invalid_refresh_token", "Сеанс недействителен"

    def __init__(self, code: str | None = None) -> None:
        super().__init__("Сеанс завершён или недействителен. Войдите снова")
        if code is not None:
            self.code = code


class RefreshTokenReused(InvalidRefreshToken):
    code = "refresh_token_reused"

    def __init__(self) -> None:
        super().__init__()
        self.message = "Сеанс завершён из соображений безопасности. Войдите снова"
        self.args = (self.message,)


class LinkInvalid(ApplicationError):
    """An unknown, already used or expired one-time link (`kind`: password_reset or email_change)."""

    status, title = 400, "Ссылка недействительна"

    def __init__(self, kind: str, reason: str) -> None:
        messages = {
            "invalid": "Ссылка недействительна. Запросите новую",
            "used": "Ссылка уже была использована. Запросите новую",
            "expired": "Срок действия ссылки истёк. Запросите новую",
        }
        super().__init__(
            messages[reason], violations=[Violation("token", f"{kind}_token_{reason}", messages[reason])]
        )
        self.code = f"{kind}_token_{reason}"


class WrongCurrentPassword(ApplicationError):
    status, code, title = 422, "wrong_current_password", "Неверный текущий пароль"

    def __init__(self) -> None:
        message = "Текущий пароль указан неверно"
        super().__init__(message, violations=[Violation("current_password", self.code, message)])


class PasswordUnchanged(ApplicationError):
    status, code, title = 422, "password_unchanged", "Пароль не изменён"

    def __init__(self) -> None:
        message = "Новый пароль должен отличаться от текущего"
        super().__init__(message, violations=[Violation("new_password", self.code, message)])


class ConcurrentChange(ApplicationError):
    status, code, title = 409, "concurrent_change", "Данные изменились"

    def __init__(self) -> None:
        super().__init__("Данные учётной записи изменились одновременно с запросом. Повторите попытку")


class UserNotFound(ApplicationError):
    status, code, title = 401, "user_not_found", "Требуется вход"

    def __init__(self) -> None:
        super().__init__("Учётная запись не найдена. Войдите снова")
