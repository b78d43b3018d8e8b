"""Back-office simulator: the billing back-office side of the portal's event streams."""
