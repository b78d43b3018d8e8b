"""Guessing: passwords (per client address at the gateway, per e-mail at identity), proofs of payment
when linking (per user and per account at accounts, per client address at the gateway), and which
addresses have an account (registrations that hit a taken address, per client address). No limit is
bypassed by a forged X-Forwarded-For or by writing the e-mail differently. And the answers that could
tell an attacker something (unknown e-mail vs wrong password, unknown account vs wrong proof, a reset for
an unknown address) are identical.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.security.conftest import World
from tests.security.support import (
    PASSWORD,
    Gateway,
    fake_ip,
    new_customer,
    new_email,
    problem,
)


def _spoofed(real: str) -> dict[str, str]:
    """What the ingress forwards when the client sends its own X-Forwarded-For: the real address last."""
    return {"X-Forwarded-For": f"{fake_ip()}, {real}"}


async def test_password_guessing_is_limited_per_address_whatever_x_forwarded_for_says(
    make_gateway: Callable[..., Any],
) -> None:
    async with make_gateway(login_max_failures=3) as gw, gw.client() as c:
        victim = await new_customer(c, "Угадайкина Ольга")
        attacker = fake_ip()
        for _ in range(3):
            r = await c.post(
                "/api/v1/auth/login",
                headers=_spoofed(attacker),
                json={"email": new_email("nobody"), "password": "угадываю-пароль"},
            )
            problem(r, 401, "invalid_credentials")
        # Blocked, with the right password too and whatever address it claims to come from.
        r = await c.post(
            "/api/v1/auth/login",
            headers=_spoofed(attacker),
            json={"email": victim.email, "password": PASSWORD},
        )
        body = problem(r, 429, "too_many_requests")
        assert int(r.headers["retry-after"]) > 0 and "мин" in body["detail"]
        # The real customer, from her own address, is not affected.
        r = await c.post(
            "/api/v1/auth/login",
            headers={"X-Forwarded-For": fake_ip()},
            json={"email": victim.email, "password": PASSWORD},
        )
        assert r.status_code == 200, r.text
        # The portal's login form shares the limit.
        async with gw.client(ip=attacker) as portal:
            page = await portal.get("/login", headers=_spoofed(attacker))
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            r = await portal.post(
                "/login",
                headers=_spoofed(attacker),
                data={"csrf_token": token, "email": victim.email, "password": PASSWORD},
            )
            assert r.status_code == 200 and "Слишком много попыток" in r.text

    # Without a proxy in front (the default), X-Forwarded-For is not believed at all.
    async with make_gateway(login_max_failures=2, trusted_proxy_hops=0) as gw, gw.client() as c:
        for _ in range(2):
            r = await c.post(
                "/api/v1/auth/login",
                headers={"X-Forwarded-For": fake_ip()},
                json={"email": new_email("nobody"), "password": "угадываю-пароль"},
            )
            problem(r, 401)
        r = await c.post(
            "/api/v1/auth/login",
            headers={"X-Forwarded-For": fake_ip()},
            json={"email": new_email("nobody"), "password": "x"},
        )
        problem(r, 429, "too_many_requests")


async def test_guessing_one_accounts_password_is_limited_per_email_in_any_spelling(gateway: Gateway) -> None:
    """Identity locks the e-mail after 5 failures, whatever the client address or the spelling."""
    async with gateway.client() as c:
        victim = await new_customer(c, "Блокируемая Мария")
        local, domain = victim.email.split("@")
        spellings = [
            victim.email.upper(),
            f"  {victim.email}  ",
            f"{local.capitalize()}@{domain.upper()}",
            f"{local}@{domain.title()}",
            victim.email,
        ]
        statuses = []
        for spelling in spellings:  # each from another client address
            r = await c.post(
                "/api/v1/auth/login",
                headers={"X-Forwarded-For": fake_ip()},
                json={"email": spelling, "password": "неверный-пароль-1"},
            )
            statuses.append(problem(r)["status"])
        # The fifth failure locks the address (and says so).
        assert statuses == [401, 401, 401, 401, 429], statuses
        for spelling in (victim.email, victim.email.upper()):
            r = await c.post(
                "/api/v1/auth/login",
                headers={"X-Forwarded-For": fake_ip()},
                json={"email": spelling, "password": PASSWORD},
            )
            body = problem(r, 429)
            assert int(r.headers["retry-after"]) > 0, body


async def test_guessing_a_proof_of_payment_is_limited_per_user_and_per_account(
    gateway: Gateway, make_gateway: Callable[..., Any], world: World
) -> None:
    target = world.unlinked
    async with gateway.client() as c:
        mallory = await new_customer(c, "Злоумышленников Мэлори")
        for amount in ("1.00", "2.00", "3.00", "4.00", "5.00"):
            r = await c.post(
                "/api/v1/accounts",
                headers={**mallory.auth, "X-Forwarded-For": fake_ip()},
                json=target.proof(last_payment_amount=amount),
            )
            problem(r, 422, "account_link_failed")
        # The sixth try is refused even with the right proof, from any address.
        r = await c.post(
            "/api/v1/accounts", headers={**mallory.auth, "X-Forwarded-For": fake_ip()}, json=target.proof()
        )
        problem(r, 429)
        assert int(r.headers["retry-after"]) > 0
        # A second account of the attacker (or a botnet of them) gets no fresh tries on this account.
        trudy = await new_customer(c, "Помощникова Труди")
        r = await c.post(
            "/api/v1/accounts", headers={**trudy.auth, "X-Forwarded-For": fake_ip()}, json=target.proof()
        )
        problem(r, 429)
        for customer in (mallory, trudy):
            assert (await c.get("/api/v1/accounts", headers=customer.auth)).json() == []

    # The gateway's own limit per client address (before accounts is called), not fooled by the header.
    async with make_gateway(link_max_failures=2) as gw, gw.client() as c:
        eve = await new_customer(c, "Подслушкина Ева")
        real = fake_ip()
        for _ in range(2):
            r = await c.post(
                "/api/v1/accounts",
                headers={**eve.auth, **_spoofed(real)},
                json={
                    "account_no": f"{uuid.uuid4().int % 10**12:012d}",
                    "last_payment_month": "2026-01",
                    "last_payment_amount": "10.00",
                },
            )
            problem(r, 422, "account_link_failed")
        r = await c.post("/api/v1/accounts", headers={**eve.auth, **_spoofed(real)}, json=target.proof())
        problem(r, 429, "too_many_requests")


async def test_probing_which_addresses_are_registered_is_cut_off(
    make_gateway: Callable[..., Any], world: World
) -> None:
    async with make_gateway(register_max_conflicts=2) as gw, gw.client() as c:
        body = {"password": PASSWORD, "full_name": "Проверкин Пётр"}
        for email in (world.alice.email, world.bob.email.upper()):
            r = await c.post("/api/v1/auth/register", json={**body, "email": email})
            conflict = problem(r, 409, "email_taken")
            assert world.alice.user_id not in r.text and world.bob.user_id not in r.text, conflict
        r = await c.post("/api/v1/auth/register", json={**body, "email": new_email()})
        problem(r, 429, "too_many_requests")
        # Another client address may still register.
        r = await c.post(
            "/api/v1/auth/register",
            headers={"X-Forwarded-For": fake_ip()},
            json={**body, "email": new_email()},
        )
        assert r.status_code == 201, r.text


async def test_answers_do_not_tell_whether_an_account_or_address_exists(
    gateway: Gateway, world: World
) -> None:
    def comparable(r: httpx.Response) -> tuple[int, str, str, str]:
        return r.status_code, r.headers["content-type"], r.headers.get("content-language", ""), r.text

    async with gateway.client() as c:
        victim = await new_customer(c, "Существующая Вера")
        # A wrong password and an unknown address: the same answer.
        known = await c.post(
            "/api/v1/auth/login",
            headers={"X-Forwarded-For": fake_ip()},
            json={"email": victim.email, "password": "неверный-пароль-1"},
        )
        unknown = await c.post(
            "/api/v1/auth/login",
            headers={"X-Forwarded-For": fake_ip()},
            json={"email": new_email("ghost"), "password": "неверный-пароль-1"},
        )
        assert comparable(known) == comparable(unknown)
        problem(known, 401, "invalid_credentials")
        # A reset for a known and for an unknown address: the same 202.
        known = await c.post("/api/v1/auth/password-reset", json={"email": victim.email})
        unknown = await c.post("/api/v1/auth/password-reset", json={"email": new_email("ghost")})
        assert known.status_code == 202 and comparable(known) == comparable(unknown)
        # Linking: an account that doesn't exist, another's account with a wrong month, with a wrong amount.
        prober = await new_customer(c, "Зондов Игорь")
        target = world.seeded[world.bob.account]
        answers = []
        for proof in (
            {
                "account_no": f"{uuid.uuid4().int % 10**12:012d}",
                "last_payment_month": target.payment_month,
                "last_payment_amount": target.payment_amount,
            },
            target.proof(last_payment_month="2019-01"),
            target.proof(last_payment_amount="1.23"),
        ):
            answers.append(
                await c.post(
                    "/api/v1/accounts", headers={**prober.auth, "X-Forwarded-For": fake_ip()}, json=proof
                )
            )
        assert len({comparable(a) for a in answers}) == 1, [a.text for a in answers]
        problem(answers[0], 422, "account_link_failed")
