"""The users page, /inbox/users (admins only): the people who log in to the inbox, added,
removed and given a new password, as ``exosms users`` does."""

from __future__ import annotations

import asyncio

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exosms.passwords import PasswordError, hash_password
from exosms.store.users import FIRST_ADMIN, ROLES, UserError, Users, user_name
from exosms.web.filters import form_text
from exosms.web.inbox import Inbox
from exosms.web.login import Login


class UsersPage:
    """List, add, remove and reset the password of inbox users."""

    def __init__(self, inbox: Inbox, users: Users) -> None:
        """``users``: the table of everyone but the first admin."""
        self.inbox = inbox
        self.users = users

    async def show(
        self,
        request: Request,
        login: Login,
        *,
        status: int = 200,
        said: str | None = None,
        error: str | None = None,
    ) -> Response:
        """GET: every user and their role."""
        return self.inbox.page(
            "users.html",
            status,
            login=login,
            users=await self.users.all(),
            roles=ROLES,
            first_admin=FIRST_ADMIN,
            said=said,
            error=error,
        )

    async def change(self, request: Request, login: Login) -> Response:
        """POST: ``action`` add (name, role, password), remove (name) or password (name,
        password)."""
        form: FormData = request.state.form
        action = form_text(form, "action")
        try:
            name = user_name(form_text(form, "name"))
            if action == "add":
                hashed = await asyncio.to_thread(hash_password, form_text(form, "password", 1024))
                role = form_text(form, "role")
                await self.users.add(name, role, hashed)
                said = f"{name} added as {role}: they log in with their name and password"
            elif action == "remove":
                if not await self.users.remove(name):
                    raise UserError(f"there is no user {name!r}")
                said = f"{name} removed: logged out everywhere"
            elif action == "password":
                hashed = await asyncio.to_thread(hash_password, form_text(form, "password", 1024))
                if not await self.users.set_password(name, hashed):
                    raise UserError(f"there is no user {name!r}")
                said = f"{name} has a new password: logged out everywhere"
            else:
                raise UserError("action: add, remove or password")
        except (UserError, PasswordError) as error:
            return await self.show(request, login, status=400, error=str(error))
        return await self.show(request, login, said=said)

    def routes(self) -> list[BaseRoute]:
        """The page and its form: an admin's."""
        g = self.inbox.guarded
        return [
            Route("/inbox/users", g(self.show, admin=True), methods=["GET"]),
            Route("/inbox/users", g(self.change, post=True, admin=True), methods=["POST"]),
        ]
