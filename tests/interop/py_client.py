"""Drives `toolshed serve` with the official MCP Python SDK, over stdio and
over streamable HTTP, and fails when the SDK refuses any answer.

Usage: python py_client.py TOOLSHED WORK_DIR PYTHON_DEV_V2_DIR

WORK_DIR/stdio/data and WORK_DIR/http/data are data directories that already
hold the templates python-dev (version 1), broken-build and slow-build
(run.sh pushes them). Each transport gets its own, because the manual-update
scenario pushes python-dev version 2 into it.

Every call goes through `ClientSession.call_tool` at default settings, after
`list_tools`. The Python SDK checks structuredContent against the tool's
outputSchema only for success results. An exception from call_tool is a
failure. When one happens, the scenario is finished with the session's plain
`send_request` (no output check) so that the later scenarios still find the
state they expect, and the row says what the server answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import secrets
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mcp.types as types
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

TOOLS = ["list_templates", "read_template", "create_workspace", "start_workspace", "stop_workspace", "provision_registry"]
# A template id that is a well-formed UUID but names no template.
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"
# How long one scenario may keep making the call a STILL_IN_PROGRESS answer names.
FOLLOW_LIMIT_S = 120.0

rows: list[list[str]] = []
failures: list[str] = []
# Worth a look, but not a refusal by the SDK: printed after the table.
notes: list[str] = []


# ------------------------------------------------------------------ answers


@dataclass
class Answer:
    kind: str  # "result", "error" (an isError result) or "threw"
    code: Any = None  # the error object's code, or the exception's JSON-RPC code
    value: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def answer_object(result: types.CallToolResult) -> dict[str, Any]:
    """structuredContent, else the JSON text content."""
    if isinstance(result.structured_content, dict):
        return result.structured_content
    for block in result.content:
        if isinstance(block, types.TextContent):
            try:
                parsed = json.loads(block.text)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                return parsed
    return {}


def classify(result: types.CallToolResult) -> Answer:
    value = answer_object(result)
    if result.is_error:
        code = value.get("code")
        return Answer("error", code if isinstance(code, str) else "(no code)", value)
    return Answer("result", value=value)


def threw(e: BaseException) -> Answer:
    code = e.code if isinstance(e, MCPError) else None
    return Answer("threw", code, message=f"{type(e).__name__}: {e}")


def describe(answer: Answer) -> str:
    if answer.kind == "result":
        return "result"
    if answer.kind == "error":
        return answer.code
    return f"JSON-RPC error {answer.code}"


def parse_call(text: str) -> tuple[str, dict[str, Any]]:
    """`tool {"json": "arguments"}`, as suggestions[0] of STILL_IN_PROGRESS reads."""
    tool, _, args = text.partition(" ")
    return tool, (json.loads(args) if args.strip() else {})


def short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# ------------------------------------------------------------------ a session


class Session:
    def __init__(self, transport: str, session: ClientSession):
        self.transport = transport
        self.session = session
        self.nonce = secrets.token_hex(3)

    def chat(self, group: str) -> str:
        return f"py-{self.transport}-{self.nonce}-{group}"

    async def list_all_tools(self) -> None:
        """list_tools until every tool is listed: plugins install in the
        background, and a slow install is only announced later with
        list_changed."""
        deadline = time.monotonic() + 180
        while True:
            listed = await self.session.list_tools()
            missing = [t for t in TOOLS if t not in {tool.name for tool in listed.tools}]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"tools never listed: {', '.join(missing)}")
            await asyncio.sleep(1)

    async def sdk_call(self, tool: str, args: dict[str, Any], meta: dict[str, Any]) -> Answer:
        """One call through the SDK's call_tool."""
        try:
            return classify(await self.session.call_tool(tool, args, meta=meta))
        except Exception as e:  # noqa: BLE001 - any exception is what is being tested
            return threw(e)

    async def raw_call(self, tool: str, args: dict[str, Any], meta: dict[str, Any]) -> Answer:
        """The same call without the SDK's output check."""
        request = types.CallToolRequest(params=types.CallToolRequestParams(name=tool, arguments=args, _meta=meta))
        try:
            return classify(await self.session.send_request(request, types.CallToolResult))
        except Exception as e:  # noqa: BLE001
            return threw(e)

    async def check(
        self,
        group: str,
        tool: str,
        args: dict[str, Any],
        expect: str | list[str],
        *,
        follow: bool | None = None,
        meta: dict[str, Any] | None = None,
        label: str | None = None,
    ) -> Answer:
        """Runs one scenario and records its row.

        expect: "result", an error code, or a list of acceptable codes.
        follow: keep making the call that STILL_IN_PROGRESS names (default:
                unless STILL_IN_PROGRESS is what the scenario expects).
        meta:   the call's _meta (default: the group's chat).
        label:  the tool column, when it should say more than the tool name.
        """
        expected = expect if isinstance(expect, list) else [expect]
        if follow is None:
            follow = "STILL_IN_PROGRESS" not in expected
        if meta is None:
            meta = {"chat_id": self.chat(group)}
        call_tool, call_args = tool, args
        refused: tuple[str, dict[str, Any], str] | None = None
        follows = 0
        builds: set[str] = set()
        deadline = time.monotonic() + FOLLOW_LIMIT_S
        while True:
            if refused:
                answer = await self.raw_call(call_tool, call_args, meta)
            else:
                answer = await self.sdk_call(call_tool, call_args, meta)
                if answer.kind == "threw":
                    refused = (call_tool, call_args, answer.message)
                    answer = await self.raw_call(call_tool, call_args, meta)
            if answer.value.get("build_id"):
                builds.add(answer.value["build_id"])
            suggestions = answer.value.get("suggestions") or []
            if follow and answer.kind == "error" and answer.code == "STILL_IN_PROGRESS" and suggestions and time.monotonic() < deadline:
                call_tool, call_args = parse_call(suggestions[0])
                follows += 1
                await asyncio.sleep(0.3)
                continue
            break
        # Making the call STILL_IN_PROGRESS names should wait on the same
        # build; a build id that changes means each call started a new one.
        after = f" (after {follows} STILL_IN_PROGRESS{f', {len(builds)} build_ids' if len(builds) > 1 else ''})" if follows else ""
        if len(builds) > 1:
            notes.append(f"[py/{self.transport}] {tool} {compact(args)}: the answers named {len(builds)} different build_ids")
        if refused:
            outcome = f"FAIL: SDK threw: {short(refused[2], 90)} [server answered {describe(answer)}]"
            failures.append(f"[py/{self.transport}] {refused[0]} {compact(refused[1])} (_meta {compact(meta)}): {refused[2]}")
        elif answer.kind == "threw":
            outcome = f"FAIL: {short(answer.message, 90)}"
            failures.append(f"[py/{self.transport}] {call_tool} {compact(call_args)}: {answer.message}")
        elif describe(answer) in expected:
            outcome = f"ok: {describe(answer)}{after}"
        else:
            message = f": {short(answer.value.get('error', ''), 100)}" if answer.kind == "error" else ""
            outcome = f"FAIL: expected {' or '.join(expected)}, got {describe(answer)}{message}"
            failures.append(f"[py/{self.transport}] {tool} {compact(args)}: {outcome[6:]}")
        rows.append([self.transport, label or tool, short(args, 60), " | ".join(expected), outcome])
        return answer

    async def stop_quietly(self, group: str) -> Answer:
        """Best effort, outside the table: stop the group's workspace,
        following STILL_IN_PROGRESS, so no agent process is left behind."""
        meta = {"chat_id": self.chat(group)}
        deadline = time.monotonic() + FOLLOW_LIMIT_S
        while True:
            answer = await self.raw_call("stop_workspace", {}, meta)
            if answer.kind == "error" and answer.code == "STILL_IN_PROGRESS" and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
                continue
            return answer


# Six seconds: past one build poll (2 s) and the answer's margin (3 s), so
# a build that fails fast is answered in one call, and short enough that a
# build waiting for its release answers STILL_IN_PROGRESS within seconds.
WAIT_BUDGET = "6"

# ------------------------------------------------------------------ scenarios

# The slow-build workspace's name; its build ends once a file named
# `release` appears in its directory (data/workspaces/OWNER/NAME).
SLOW_WORKSPACE = "slow-box"


def release_slow_build(data_dir: Path) -> None:
    root = data_dir / "workspaces"
    if not root.is_dir():
        return
    for owner in root.iterdir():
        workspace = owner / SLOW_WORKSPACE
        if workspace.is_dir():
            (workspace / "release").write_text("released\n")


async def scenarios(s: Session, toolshed: str, data_dir: Path, v2_dir: str) -> None:
    created: list[str] = []
    try:
        # Templates.
        listed = await s.check("templates", "list_templates", {}, "result")
        ids = {t.get("name"): t.get("id") for t in listed.value.get("templates", [])}
        for name in ["python-dev", "broken-build", "slow-build"]:
            if not ids.get(name):
                raise RuntimeError(f"list_templates did not list {name}: {compact(listed.value)}")
        await s.check("templates", "list_templates", {"bogus": 1}, "INVALID_ARGUMENTS")
        await s.check("templates", "read_template", {}, "INVALID_ARGUMENTS")
        await s.check("templates", "read_template", {"template_id": ""}, "TEMPLATE_ID_REQUIRED")
        await s.check("templates", "read_template", {"template_id": "nope"}, "INVALID_TEMPLATE_ID")
        await s.check("templates", "read_template", {"template_id": UNKNOWN_UUID}, "TEMPLATE_NOT_FOUND")
        await s.check("templates", "read_template", {"template_id": ids["python-dev"]}, "result")

        # create_workspace refusals, before any workspace exists.
        await s.check("create", "create_workspace", {}, "INVALID_ARGUMENTS")
        await s.check("create", "create_workspace", {"template_id": ""}, "TEMPLATE_ID_REQUIRED")
        await s.check("create", "create_workspace", {"template_id": "nope"}, "INVALID_TEMPLATE_ID")
        await s.check("create", "create_workspace", {"template_id": UNKNOWN_UUID}, ["TEMPLATE_NOT_FOUND", "TEMPLATE_NOT_AVAILABLE"])

        # A chat without a workspace.
        await s.check("empty", "start_workspace", {}, "NO_WORKSPACE")
        await s.check("empty", "stop_workspace", {}, "NO_WORKSPACE")
        await s.check("empty", "start_workspace", {"parameters": "eu"}, "INVALID_ARGUMENTS")

        # A build that fails.
        created.append("broken")
        await s.check("broken", "create_workspace", {"template_id": ids["broken-build"]}, "BUILD_FAILED")

        # A build that outlasts the wait budget, then ends once released.
        created.append("slow")
        slow_args = {"template_id": ids["slow-build"], "name": SLOW_WORKSPACE}
        still = await s.check("slow", "create_workspace", slow_args, "STILL_IN_PROGRESS")
        release_slow_build(data_dir)
        suggested = (still.value.get("suggestions") or [None])[0] if still.kind == "error" else None
        if suggested:
            tool, args = parse_call(suggested)
            await s.check("slow", tool, args, "result", label=f"{tool} (suggestions[0])")
        else:
            rows.append([s.transport, "create_workspace (suggestions[0])", "", "result", "FAIL: no suggestions[0] to call"])
            failures.append(f"[py/{s.transport}] create_workspace: the STILL_IN_PROGRESS answer had no suggestions[0]")
        await s.check("slow", "stop_workspace", {}, "result")

        # The manual update of SPEC 3.6: the template gains a required
        # parameter while the workspace is stopped.
        created.append("update")
        await s.check("update", "create_workspace", {"template_id": ids["python-dev"], "name": "interop-box"}, "result")
        await s.check("update", "stop_workspace", {}, "result")
        push_template(toolshed, data_dir, v2_dir)
        await s.check("update", "start_workspace", {}, "TEMPLATE_PARAMETERS_REQUIRED")
        await s.check("update", "start_workspace", {"parameters": {"region": "eu"}}, "result")
        await s.check("update", "stop_workspace", {}, "result")

        # provision_registry.
        registry = {"project_id": "p1", "cluster_id": "c1", "cluster_name": "main cluster", "provider": "hetzner", "region": "fsn1"}
        await s.check("registry", "provision_registry", {}, "INVALID_ARGUMENTS")
        await s.check("registry", "provision_registry", {**registry, "project_id": ""}, "PROJECT_ID_REQUIRED")
        await s.check("registry", "provision_registry", {**registry, "cluster_id": ""}, "CLUSTER_ID_REQUIRED")
        await s.check("registry", "provision_registry", {**registry, "provider": "aws"}, "UNKNOWN_PROVIDER")
        await s.check("registry", "provision_registry", {**registry, "provider": "gcp"}, "GCP_PROJECT_ID_REQUIRED")
        await s.check("registry", "provision_registry", {**registry, "registry_name": "Interop Registry"}, "result")

        # What the server refuses before any tool runs.
        await s.check(
            "meta", "list_templates", {}, "INVALID_CHAT_ID", meta={"chat_id": "bad id!"}, label='list_templates (_meta.chat_id "bad id!")'
        )
        await unknown_tool(s)
    except Exception as e:  # noqa: BLE001
        rows.append([s.transport, "(scenarios)", "", "", f"FAIL: {e}"])
        failures.append(f"[py/{s.transport}] scenarios stopped: {traceback.format_exc()}")
    finally:
        # Let a build still waiting for its release end, then stop every
        # workspace the scenarios created.
        release_slow_build(data_dir)
        for group in created:
            answer = await s.stop_quietly(group)
            if answer.kind == "threw":
                print(f"[py/{s.transport}] cleanup stop_workspace ({group}): {answer.message}", file=sys.stderr)


async def unknown_tool(s: Session) -> None:
    """An unknown tool: an isError result with UNKNOWN_TOOL, or a JSON-RPC
    error (the SDK raises MCPError). Either is accepted; the row says which."""
    answer = await s.sdk_call("no_such_tool", {}, {"chat_id": s.chat("meta")})
    if answer.kind == "error" and answer.code == "UNKNOWN_TOOL":
        outcome = "ok: UNKNOWN_TOOL (isError result)"
    elif answer.kind == "threw" and isinstance(answer.code, int):
        outcome = f"ok: JSON-RPC error {answer.code}: {short(answer.message, 80)}"
    else:
        outcome = f"FAIL: got {answer.message if answer.kind == 'threw' else describe(answer)}"
        failures.append(f"[py/{s.transport}] no_such_tool {{}}: {outcome[6:]}")
    rows.append([s.transport, "no_such_tool", "{}", "UNKNOWN_TOOL | JSON-RPC error", outcome])


# ------------------------------------------------------------------ servers


def push_template(toolshed: str, data_dir: Path, template_dir: str) -> None:
    subprocess.run([toolshed, "--data-dir", str(data_dir), "template", "push", template_dir], check=True, capture_output=True, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Until the server answers HTTP at all (any status will do)."""
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"toolshed serve exited {server.returncode}; see {log}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"toolshed serve did not answer at {url}; see {log}") from None
            time.sleep(0.2)


def message_handler(transport: str):
    """Errors the transport reports outside any request (a message it could
    not read, say) become notes; the session's default handler drops them."""

    async def handle(message: Any) -> None:
        if isinstance(message, Exception):
            notes.append(f"[py/{transport}] transport error: {type(message).__name__}: {message}")

    return handle


@contextlib.asynccontextmanager
async def stdio_session(toolshed: str, directory: Path):
    params = StdioServerParameters(command=toolshed, args=["--data-dir", str(directory / "data"), "serve", "--wait-budget", WAIT_BUDGET])
    with open(directory / "serve.log", "a") as log:
        async with stdio_client(params, errlog=log) as (read, write):
            async with ClientSession(read, write, message_handler=message_handler("stdio")) as session:
                yield session, await session.initialize()


@contextlib.asynccontextmanager
async def http_session(toolshed: str, directory: Path):
    port = free_port()
    log_path = directory / "serve.log"
    with open(log_path, "a") as log:
        server = subprocess.Popen(
            [toolshed, "--data-dir", str(directory / "data"), "serve", "--http", f"127.0.0.1:{port}", "--wait-budget", WAIT_BUDGET],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            url = f"http://127.0.0.1:{port}/mcp"
            await asyncio.to_thread(wait_for_http, url, server, log_path)
            async with streamable_http_client(url) as (read, write):
                async with ClientSession(read, write, message_handler=message_handler("http")) as session:
                    yield session, await session.initialize()
        finally:
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


async def run_transport(name: str, connect, toolshed: str, work_dir: Path, v2_dir: str) -> None:
    directory = work_dir / name
    try:
        async with connect(toolshed, directory) as (session, init):
            info = init.server_info
            print(f"[py/{name}] server {info.name} {info.version}, protocol {init.protocol_version}")
            s = Session(name, session)
            await s.list_all_tools()
            await scenarios(s, toolshed, directory / "data", v2_dir)
    except Exception as e:  # noqa: BLE001
        rows.append([name, "(connection)", "", "", f"FAIL: {e}"])
        failures.append(f"[py/{name}] {traceback.format_exc()}")


# ------------------------------------------------------------------ main


def print_table(header: list[str], body: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(str(r[i])) for r in body]) for i, h in enumerate(header)]

    def line(r: list[str]) -> str:
        return "  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip()

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in body:
        print(line(r))


class SdkWarnings(logging.Handler):
    """What the SDK logs as a warning or worse about the server (a session
    whose DELETE it took as failed, a message it could not read) is a
    failure: a client at its default settings would show it to its user."""

    def emit(self, record: logging.LogRecord) -> None:
        failures.append(f"[py] the SDK logged {record.levelname}: {record.getMessage()}")


async def main() -> int:
    logging.getLogger("mcp").addHandler(SdkWarnings(logging.WARNING))
    if len(sys.argv) != 4:
        print("usage: python py_client.py TOOLSHED WORK_DIR PYTHON_DEV_V2_DIR", file=sys.stderr)
        return 2
    toolshed, work_dir, v2_dir = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    print(f"Python SDK mcp {importlib.metadata.version('mcp')}, python {sys.version.split()[0]}")
    await run_transport("stdio", stdio_session, toolshed, work_dir, v2_dir)
    await run_transport("http", http_session, toolshed, work_dir, v2_dir)
    print()
    print_table(["transport", "tool", "arguments", "expected", "outcome"], rows)
    print()
    for n in notes:
        print(f"note: {n}")
    if notes:
        print()
    if failures:
        print(f"Python SDK: {len(failures)} failure(s):")
        for f in failures:
            print(f"  {f}")
        return 1
    print(f"Python SDK: all {len(rows)} scenarios passed")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
