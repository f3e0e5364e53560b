"""The shapes of every form and JSON body the HTTP edge accepts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import EmailStr, StringConstraints

from streamzy.guards.validation import Line, StrictModel, Text

Password = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class LoginForm(StrictModel):
    username: Annotated[Line, StringConstraints(min_length=1, max_length=128)]
    # Passwords are taken exactly as typed: no trimming, no normalisation.
    password: Password
    next: Annotated[str, StringConstraints(max_length=512)] = ""


class ApplyForm(StrictModel):
    username: Annotated[Line, StringConstraints(min_length=1, max_length=64)]
    display_name: Annotated[Line, StringConstraints(min_length=1, max_length=64)]
    email: Annotated[EmailStr, StringConstraints(max_length=254)]
    reason: Annotated[Text, StringConstraints(min_length=10, max_length=1000)]


class PasswordForm(StrictModel):
    current_password: Password
    new_password: Password
    confirm_password: Password
    end_other_sessions: Literal["on", "1", "true"] | None = None
    # First change only: the room page asked for at sign-in, to go on to afterwards.
    next: Annotated[str, StringConstraints(max_length=512)] = ""


class StatusForm(StrictModel):
    reference: Annotated[Line, StringConstraints(min_length=1, max_length=64)]


class ApproveForm(StrictModel):
    # Empty: the requested name. The admin picks another when the queue shows a conflict.
    username: Annotated[Line, StringConstraints(max_length=64)] = ""


class RejectForm(StrictModel):
    reason: Annotated[Text, StringConstraints(min_length=3, max_length=500)]


class UserActionForm(StrictModel):
    action: Literal["disable", "enable", "unlock", "reset_password", "grant_admin",
                    "revoke_admin", "reset_second_factor"]


class AuditFilter(StrictModel):
    event: Annotated[str, StringConstraints(max_length=48, pattern=r"^[a-z_]*$")] = ""
    user_id: Annotated[str, StringConstraints(max_length=18, pattern=r"^\d*$")] = ""
    since: Annotated[str, StringConstraints(max_length=32)] = ""
    until: Annotated[str, StringConstraints(max_length=32)] = ""
    page: Annotated[str, StringConstraints(max_length=6, pattern=r"^\d*$")] = ""
    format: Literal["", "html", "csv", "json"] = ""


class EmptyForm(StrictModel):
    pass



# Second-factor codes: generous limits on purpose, so any typed text reaches the service,
# which answers "malformed" for anything that is not a 6-digit or recovery code.
Code = Annotated[str, StringConstraints(max_length=256)]


class CodeForm(StrictModel):
    code: Code = ""
    next: Annotated[str, StringConstraints(max_length=512)] = ""


class DisableTotpForm(StrictModel):
    password: Password
    code: Code = ""
