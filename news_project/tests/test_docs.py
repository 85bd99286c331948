"""README.md and docs/: a short README that starts with the cycle, every shell block run by CI,
every setting documented, nothing said twice."""

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def load_doc_blocks():
    spec = importlib.util.spec_from_file_location("doc_blocks", ROOT / ".ci" / "doc_blocks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


doc_blocks = load_doc_blocks()
DOCUMENTS = doc_blocks.documents(ROOT)
BLOCKS = [block for path in DOCUMENTS for block in doc_blocks.shell_blocks(path)]
README = (ROOT / "README.md").read_text()
CI_RUN = (ROOT / ".ci" / "run").read_text()


def blocks_of(kind: str) -> list:
    return [block for block in BLOCKS if block.kind == kind]


def where(block) -> str:
    return f"{block.path.relative_to(ROOT)}:{block.line}"


# --- The README ----------------------------------------------------------------------------------


def test_the_docs_are_the_readme_and_five_references():
    assert [path.name for path in DOCUMENTS] == [
        "README.md",
        "api.md",
        "benchmarks.md",
        "changelog.md",
        "operations.md",
        "sync.md",
    ]


def test_the_readme_is_short_and_its_first_screen_has_the_two_commands_and_the_cycle():
    lines = README.splitlines()
    (cycle,) = blocks_of("cycle")

    assert len(lines) <= 175
    assert cycle.path.name == "README.md"
    assert cycle.line <= 30
    first_screen = "\n".join(lines[: cycle.line])
    assert "make run " in first_screen and "make test " in first_screen


def test_the_cycle_goes_in_the_order_that_works():
    (cycle,) = blocks_of("cycle")
    programs = [step.split("#")[0].strip() for step in cycle.steps]

    expected = [
        "make run",
        "make fake-target",
        "make import",
        "DJANGO_SUPERUSER_PASSWORD=choose-a-password make superuser",
        "TOKEN=$(curl -s -X POST http://127.0.0.1:8000/api/token/",
        "curl -s -X PATCH http://127.0.0.1:8000/news/posts/1/",
        "make sync ARGS=--dry-run",
        "make sync",
        "curl -s http://127.0.0.1:3000/posts/1",
    ]
    assert [program[: len(want)] for program, want in zip(programs, expected, strict=True)] == (
        expected
    )


def test_the_readme_says_how_to_start_over_and_what_the_public_target_does():
    in_readme = [block.steps for block in blocks_of("run") if block.path.name == "README.md"]

    assert in_readme == [["make reset"]]
    assert "stores nothing" in README


def token_step() -> str:
    (cycle,) = blocks_of("cycle")
    return next(step for step in cycle.steps if step.startswith("TOKEN="))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("password", ["choose-a-password", "wrong"])
def test_the_token_step_gives_a_token_or_prints_the_apis_error_in_one_line(
    live_server, make_user, password
):
    make_user("admin", password=password if password != "wrong" else "something-else")
    step = token_step().replace("http://127.0.0.1:8000", live_server.url)

    result = subprocess.run(
        ["bash", "-c", f'{step}\necho "token: $TOKEN"'],
        capture_output=True,
        text=True,
        timeout=30,
    )

    if password == "wrong":
        assert result.stderr == (
            "No token: {'detail': 'No active account found with the given credentials'}\n"
        )
        assert result.stdout == "token: \n"
    else:
        assert (result.returncode, result.stderr) == (0, "")
        assert re.fullmatch(r"token: [\w-]+\.[\w-]+\.[\w-]+\n", result.stdout)


# --- Every shell block is run by CI --------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS, ids=where)
def test_every_shell_block_says_how_ci_runs_it(block):
    assert block.kind in doc_blocks.KINDS, f"{where(block)}: no <!-- doc: KIND --> marker"


def test_ci_runs_the_cycle_and_run_blocks_the_benchmarks_and_the_compose_check():
    assert '"$VENV/bin/python" .ci/doc-run' in CI_RUN
    assert ".ci/bench-smoke" in CI_RUN
    schema = ".ci/compose-spec/compose_spec.json"
    assert f'check-jsonschema" --schemafile {schema} docker-compose.yml' in CI_RUN
    assert "\nmake test\n" in CI_RUN


def command_words(step: str) -> list[str]:
    """The words of a step without its leading VAR=value assignments and its comment."""
    words = shlex.split(step.replace("\\\n", " "), comments=True)
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        words.pop(0)
    return words


@pytest.mark.parametrize("block", blocks_of("ci"), ids=where)
def test_ci_blocks_are_what_ci_runs(block):
    (cycle,) = blocks_of("cycle")
    for step in block.steps:
        command = " ".join(command_words(step)[:2])
        assert command == ".ci/run" or command in CI_RUN or command in cycle.text, step


@pytest.mark.parametrize("block", blocks_of("bench"), ids=where)
def test_bench_blocks_are_run_small_by_bench_smoke(block):
    smoke = (ROOT / ".ci" / "bench-smoke").read_text()
    for step in block.steps:
        words = command_words(step)
        script = words[2] if words[1] == "-m" else words[1]
        assert script in smoke, step


@pytest.mark.parametrize("block", blocks_of("compose"), ids=where)
def test_compose_blocks_hold_docker_compose_commands_only(block):
    for step in block.steps:
        assert step.startswith(("docker compose ", "cp .env.example .env", "curl -s ")), step


# --- Settings ------------------------------------------------------------------------------------


def env_example_names() -> list[str]:
    names = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := re.match(r"#? ?([A-Z][A-Z0-9_]+)=", line):
            names.append(match.group(1))
    return names


def settings_read_from_the_environment() -> set[str]:
    found = set()
    for module in ("settings.py", "env.py"):
        source = (ROOT / "news_project" / module).read_text()
        found |= set(re.findall(r'(?:env_\w+|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]+)"', source))
    return found


OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
SETTINGS_ROWS = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", OPERATIONS, flags=re.MULTILINE))


def test_every_setting_of_env_example_has_a_row_in_operations():
    assert env_example_names()
    assert sorted(set(env_example_names()) - SETTINGS_ROWS) == []


def test_every_setting_read_from_the_environment_has_a_row_in_operations():
    names = settings_read_from_the_environment()

    assert {"DJANGO_SECRET_KEY", "SYNC_RUN_RETENTION_DAYS", "DJANGO_ENV_FILE"} <= names
    assert sorted(names - SETTINGS_ROWS) == []


def test_every_variable_of_the_compose_file_has_a_row_in_operations():
    compose = (ROOT / "docker-compose.yml").read_text()
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", compose))

    assert sorted(names - SETTINGS_ROWS) == []


# --- Nothing said twice --------------------------------------------------------------------------


def prose_lines(path: Path) -> list[str]:
    """Lines outside code blocks long enough to be a statement of their own."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced and len(line.strip()) >= 60:
            lines.append(line.strip())
    return lines


def test_nothing_is_said_twice():
    seen: dict[str, str] = {}
    repeated = []
    for path in DOCUMENTS:
        for line in prose_lines(path):
            if line in seen:
                repeated.append(f"{seen[line]} and {path.name}: {line}")
            seen.setdefault(line, path.name)

    assert repeated == []
