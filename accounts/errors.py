"""Errors of the accounts app. Views translate them to 4xx pages; the code says what went wrong."""


class SigninError(Exception):
    """A sign-in that did not go through. `refused` (403): a valid identity fxfer does not admit;
    otherwise (400) the response itself was not acceptable."""

    def __init__(self, code: str, message: str = "", *, refused: bool = False):
        super().__init__(message or code)
        self.code = code
        self.message = message or code
        self.refused = refused


class SignoutError(Exception):
    def __init__(self, code: str, message: str = ""):
        super().__init__(message or code)
        self.code = code
        self.message = message or code


class AccountError(Exception):
    """An account action that did not go through: "not_found", "unavailable" (AWS kept failing; nothing lost)."""

    def __init__(self, code: str, message: str = ""):
        super().__init__(message or code)
        self.code = code
        self.message = message or code
