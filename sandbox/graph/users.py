"""GET /users and /users/{id|userPrincipalName}."""

from __future__ import annotations

from aiohttp import web

from sandbox.graph.odata import apply_filter_order, apply_select, context_url, graph_json, list_page, parse_select
from sandbox.graph.router import Router


async def get_user(request: web.Request, p: dict[str, str]) -> web.Response:
    user = request.app["sim"].store.users[p["user"]]
    body = {"@odata.context": context_url(request, "users/$entity"), **user.to_graph()}
    return graph_json(request, apply_select(body, parse_select(request)))


async def list_users(request: web.Request, p: dict[str, str]) -> web.Response:
    users = [u.to_graph() for u in request.app["sim"].store.users.values()]
    users = apply_filter_order(request, users, "userPrincipalName")
    sel = parse_select(request)
    return list_page(request, [apply_select(u, sel) for u in users], "users", default_top=100)


def register(router: Router) -> None:
    router.add("GET", "users", list_users, "users")
    router.add("GET", "users/{user}", get_user, "users")
