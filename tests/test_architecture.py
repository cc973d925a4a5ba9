"""Static rules of the package's shape, checked on the source text, no imports run
except the CLI's (to list its flags):

(a) no module imports a ``_private`` name (a module, function, class or constant whose name
    starts with ``_``) that belongs to another package: a private module is usable inside the
    package tree that holds it (``masks/plate.py`` may use ``masks._morph``, every module of
    ``alphagan_video`` may use ``alphagan_video._atomic``; ``pipeline.py`` may not use
    ``masks._morph``), a private name of a module by the modules of its package (``farm/job.py``
    may not use ``io.writer._plan``). Both ``from M import _x`` and ``M._x`` on an imported
    module count;
(b) no file of ``alphagan_video/`` outside the ``cli/`` package spells one of the CLI's long
    flags (``--batch-size``...) in a string, docstring or comment: the library names parameters
    and ``cli.flags.PARAMETER_FLAGS`` turns them into flags;
(c) no function or method is longer than ``MAX_FUNCTION_LINES`` lines (``def`` line to last
    line; decorators not counted);
(d) no module is longer than ``MAX_MODULE_LINES`` lines;
(e) no numbered folders (``s1_mask``): packages are named for what they compute, and the order
    of a run is declared once, in the chain builder;
(f) no module of ``alphagan_video/stages/`` imports another stage module (a stage imports
    methods and the engine), and no method package (``masks``, ``trimap``, ``generator``,
    ``refine``, ``temporal``, ``foreground``) imports ``alphagan_video.stages``;
(g) every folder of modules has an ``__init__.py`` (setup.cfg's ``packages = find:`` installs
    only those).

Every failure lists all offenders as ``file:line``. Each checker also runs on a planted
violation, so a checker that finds nothing cannot pass unnoticed.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path
from typing import Callable, Iterable, Optional

import click

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "alphagan_video"
PACKAGE = "alphagan_video"
MAX_FUNCTION_LINES = 80


def _source_files() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _module_name(path: Path) -> str:
    """``alphagan_video/io/writer.py`` -> ``alphagan_video.io.writer``; ``x/__init__.py`` -> ``x``."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package_on_disk(dotted: str) -> bool:
    return (REPO.joinpath(*dotted.split(".")) / "__init__.py").is_file()


def _is_module_on_disk(dotted: str) -> bool:
    return _is_package_on_disk(dotted) or REPO.joinpath(*dotted.split(".")).with_suffix(".py").is_file()


# ----------------------------------------------------------------------------- (a) private names

def _allowed(importer_pkg: str, prefix: str, is_package: Callable[[str], bool]) -> bool:
    """May a module of package ``importer_pkg`` use a private name defined in ``prefix``?

    A private submodule or private name of a package's ``__init__`` (``prefix`` is a package)
    is an internal of that package's whole tree (every module of ``alphagan_video`` may use
    ``alphagan_video._atomic``); a private name of a plain module is shared with the modules of
    the same package only (``io.writer._plan`` with ``io/reader.py``, not with ``farm/job.py``
    nor with a subpackage)."""
    if is_package(prefix):
        return importer_pkg == prefix or importer_pkg.startswith(prefix + ".")
    return importer_pkg == prefix.rpartition(".")[0]


def _private_uses(dotted: str, importer: str, importer_is_package: bool,
                  is_package: Callable[[str], bool]) -> list[str]:
    """The private segments of ``dotted`` (a module path plus at most one name from the last
    module) that ``importer`` may not use."""
    importer_pkg = importer if importer_is_package else importer.rpartition(".")[0]
    parts = dotted.split(".")
    bad = []
    for i, part in enumerate(parts):
        if i == 0 or not part.startswith("_") or (part.startswith("__") and part.endswith("__")):
            continue
        if not _allowed(importer_pkg, ".".join(parts[:i]), is_package):
            bad.append(".".join(parts[:i + 1]))
    return bad


def _resolve_relative(module: Optional[str], level: int, importer: str, importer_is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not importer_is_package:
        base = base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _attribute_chain(node: ast.AST) -> Optional[list[str]]:
    """``a.b.c`` -> ["a", "b", "c"]; None for anything that is not names and attributes."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    names.append(node.id)
    return names[::-1]


def _module_prefix_plus_one(parts: list[str], is_module: Callable[[str], bool]) -> Optional[str]:
    """The longest module path at the start of ``parts`` plus the name after it (if any)."""
    for n in range(len(parts), 0, -1):
        if is_module(".".join(parts[:n])):
            return ".".join(parts[:n + 1])
    return None


def private_import_offenders(source: str, filename: str, importer: str, importer_is_package: bool = False, *,
                             is_package: Callable[[str], bool] = _is_package_on_disk,
                             is_module: Callable[[str], bool] = _is_module_on_disk) -> list[str]:
    """``filename:line: what`` for every private name of another package that ``source`` (the
    module ``importer``) imports or reads as an attribute of an imported package module."""
    tree = ast.parse(source, filename)
    found: list[tuple[int, str]] = []
    aliases: dict[str, str] = {}  # local name -> package module it stands for

    def check(dotted: str, line: int) -> None:
        for name in _private_uses(dotted, importer, importer_is_package, is_package):
            found.append((line, f"uses {name}"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    check(alias.name, node.lineno)
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:
                        aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(node.module, node.level, importer, importer_is_package)
            if base.split(".")[0] != PACKAGE:
                continue
            check(base, node.lineno)
            for alias in node.names:
                if alias.name == "*":
                    continue
                full = f"{base}.{alias.name}"
                check(full, node.lineno)
                if is_module(full):
                    aliases[alias.asname or alias.name] = full
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and not isinstance(getattr(node, "ctx", None), ast.Store):
            chain = _attribute_chain(node)
            if chain is None or chain[0] not in aliases or not any(p.startswith("_") for p in chain[1:]):
                continue
            dotted = _module_prefix_plus_one(aliases[chain[0]].split(".") + chain[1:], is_module)
            if dotted is not None:
                check(dotted, node.lineno)
    return [f"{filename}:{line}: {what}" for line, what in sorted(set(found))]


def test_no_private_names_of_another_package_are_imported():
    offenders = []
    for path in _source_files():
        offenders += private_import_offenders(path.read_text(encoding="utf-8"), _rel(path), _module_name(path),
                                              path.name == "__init__.py")
    assert not offenders, "private names used outside their package:\n" + "\n".join(offenders)


def test_private_import_checker_catches_planted_violations():
    def check(source: str, importer: str, is_pkg: bool = False) -> list[str]:
        return private_import_offenders(source, "planted.py", importer, is_pkg)

    assert check("from alphagan_video.io.writer import _plan, open_output\n", "alphagan_video.farm.job") == [
        "planted.py:1: uses alphagan_video.io.writer._plan"]
    assert check("from alphagan_video.masks._morph import MediaInStep\n", "alphagan_video.pipeline") == [
        "planted.py:1: uses alphagan_video.masks._morph"]
    assert check("def f():\n    from ..io import writer\n    return writer._plan\n", "alphagan_video.farm.job") == [
        "planted.py:3: uses alphagan_video.io.writer._plan"]
    assert check("import alphagan_video.pipeline as p\nx = p._UserTrimaps\n", "alphagan_video.farm.prepass") == [
        "planted.py:2: uses alphagan_video.pipeline._UserTrimaps"]
    assert check("import alphagan_video.io.writer\nx = alphagan_video.io.writer._plan\n",
                 "alphagan_video.farm.job") == ["planted.py:2: uses alphagan_video.io.writer._plan"]
    # Allowed: inside the owning package, a parent's private module, public names, dunders.
    assert check("from alphagan_video.io.reader import _header_size\n", "alphagan_video.io.writer") == []
    assert check("from ._morph import median3\nfrom . import _morph\n", "alphagan_video.masks.plate") == []
    assert check("from alphagan_video.masks import _morph\n", "alphagan_video.masks", True) == []
    assert check("from alphagan_video._atomic import temp_name\n", "alphagan_video.farm.assemble") == []
    assert check("from alphagan_video.io.writer import open_output\nimport alphagan_video\n"
                 "v = alphagan_video.__version__\n", "alphagan_video.farm.job") == []


# ----------------------------------------------------------------------------- (b) flag spellings

def cli_flags() -> set[str]:
    """Every long option (``--x``, both sides of ``--x/--no-x``) of every command of the CLI,
    recursively through its groups, the top-level group's own options included.

    One-letter short options (``-o``, ``-q``) are left out: each has a long form listed here,
    and as text they are other programs' options too (ffmpeg's ``-i``)."""
    from alphagan_video.cli import main

    flags: set[str] = set()

    def visit(command: click.Command) -> None:
        for param in command.params:
            if isinstance(param, click.Option):
                flags.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                visit(sub)

    visit(main)
    flags.update(o for o in main.context_settings.get("help_option_names", ()) if o.startswith("--"))
    return flags


def flag_spelling_offenders(source: str, filename: str, flags: Iterable[str]) -> list[str]:
    """``filename:line: --flag`` for every flag spelled in a string or comment of ``source``."""
    ordered = sorted(set(flags), key=len, reverse=True)
    if not ordered:
        return []
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, ordered)) + r")(?![\w-])")
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.STRING, tokenize.COMMENT) and tok.type != getattr(tokenize, "FSTRING_MIDDLE", -1):
            continue
        for m in pattern.finditer(tok.string):
            line = tok.start[0] + tok.string.count("\n", 0, m.start())
            found.append(f"{filename}:{line}: {m.group(1)}")
    return found


CLI_DIR = PACKAGE_DIR / "cli"


def in_cli(path: Path) -> bool:
    """Is ``path`` a module of the command-line package (the one place that may spell flags)?"""
    return CLI_DIR in path.parents


def test_no_cli_flag_is_spelled_outside_the_cli():
    flags = cli_flags()
    assert {"--batch-size", "--mask", "--trimap-band", "--no-temporal", "--quiet"} <= flags  # the collector works
    cli_files = [path for path in _source_files() if in_cli(path)]
    assert {"__init__.py", "flags.py", "options.py"} <= {path.name for path in cli_files}  # the exemption works
    offenders = []
    for path in _source_files():
        if in_cli(path):
            continue
        offenders += flag_spelling_offenders(path.read_text(encoding="utf-8"), _rel(path), flags)
    assert not offenders, ("command-line flags spelled below the CLI (name the parameter; "
                           "cli.flags.PARAMETER_FLAGS maps it to the flag):\n" + "\n".join(offenders))


def test_only_the_cli_package_is_exempt_from_the_flag_rule():
    assert in_cli(CLI_DIR / "options.py") and in_cli(CLI_DIR / "sub" / "x.py")
    assert not in_cli(PACKAGE_DIR / "cli.py") and not in_cli(PACKAGE_DIR / "pipe.py")
    assert not in_cli(PACKAGE_DIR / "farm" / "cli" / "x.py") and not in_cli(PACKAGE_DIR / "clip.py")


def test_flag_checker_catches_planted_violations():
    source = ('"""Doc: see --batch-size."""\n'
              "x = f'--mask {y}: bad'  # try --no-temporal\n"
              "y = 'a\\n' '--trimap-band=3'\n"
              "z = '''one\ntwo --batch-size'''\n"
              "ok = '--masks --batch-sizes x--mask -m mask.source'  # --unknown-flag\n"
              "ok2 = batch_size - -1\n")
    flags = {"--batch-size", "--mask", "--no-temporal", "--trimap-band"}
    assert flag_spelling_offenders(source, "planted.py", flags) == [
        "planted.py:1: --batch-size", "planted.py:2: --mask", "planted.py:2: --no-temporal",
        "planted.py:3: --trimap-band", "planted.py:5: --batch-size"]


# ----------------------------------------------------------------------------- (c) function length

def long_function_offenders(source: str, filename: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``filename:line: name is N lines`` for every function or method longer than ``limit``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append((node.lineno, f"{filename}:{node.lineno}: {node.name} is {length} lines (limit {limit})"))
    return [text for _, text in sorted(found)]


def test_no_function_is_longer_than_the_limit():
    offenders = []
    for path in _source_files():
        offenders += long_function_offenders(path.read_text(encoding="utf-8"), _rel(path))
    assert not offenders, "functions over the length limit (split them):\n" + "\n".join(offenders)


def test_length_checker_catches_planted_violations():
    body = "\n".join(f"    x{i} = {i}" for i in range(5))
    source = (f"@decorator\ndef short():\n{body}\n\nclass A:\n    async def long(self):\n"
              + "\n".join(f"        y{i} = {i}" for i in range(6)) + "\n")
    assert long_function_offenders(source, "planted.py", limit=6) == ["planted.py:10: long is 7 lines (limit 6)"]
    assert long_function_offenders(source, "planted.py", limit=7) == []



# ----------------------------------------------------------------------------- (d) module length

#: Most lines in one module of ``alphagan_video/``.
MAX_MODULE_LINES = 600
#: Modules allowed over the limit, by path: none.
LONG_MODULES_EXEMPT: frozenset[str] = frozenset()


def long_module_offenders(modules: Iterable[tuple[str, str]], limit: int = MAX_MODULE_LINES,
                          exempt: Iterable[str] = ()) -> list[str]:
    """``file: N lines`` for every (file, source) longer than ``limit`` lines, ``exempt`` files aside."""
    skip = set(exempt)
    found = []
    for filename, source in modules:
        lines = len(source.splitlines())
        if filename not in skip and lines > limit:
            found.append(f"{filename}: {lines} lines (limit {limit})")
    return found


def test_no_module_is_longer_than_the_limit():
    modules = [(_rel(path), path.read_text(encoding="utf-8")) for path in _source_files()]
    offenders = long_module_offenders(modules, exempt=LONG_MODULES_EXEMPT)
    assert not offenders, "modules over the length limit (split them):\n" + "\n".join(offenders)


def test_module_length_checker_catches_planted_violations():
    modules = [("long.py", "x = 1\n" * 11), ("short.py", "x = 1\n" * 10)]
    assert long_module_offenders(modules, limit=10) == ["long.py: 11 lines (limit 10)"]
    assert long_module_offenders(modules, limit=10, exempt={"long.py"}) == []


# ----------------------------------------------------------------------------- (e) no numbered folders

NUMBERED = re.compile(r"(^|/)s\d+_[^/]*$")


def numbered_folder_offenders(folders: Iterable[str]) -> list[str]:
    """The folders (relative paths) named like a numbered step (``s1_mask``): a name says what a
    package computes, the order lives in the chain builder."""
    return sorted(f for f in folders if NUMBERED.search(f))


def test_no_numbered_folders():
    folders = [_rel(p) for p in PACKAGE_DIR.rglob("*") if p.is_dir() and p.name != "__pycache__"]
    assert not numbered_folder_offenders(folders), "numbered folders:\n" + "\n".join(numbered_folder_offenders(folders))


def test_numbered_folder_checker_catches_planted_violations():
    assert numbered_folder_offenders(["alphagan_video/stages/s1_mask", "alphagan_video/masks",
                                      "alphagan_video/s6_foreground/models", "alphagan_video/x/s10_y",
                                      "alphagan_video/refine"]) == [
        "alphagan_video/stages/s1_mask", "alphagan_video/x/s10_y"]


# ----------------------------------------------------------------------------- (f) stages and methods

STAGES = f"{PACKAGE}.stages"
#: The method packages: what a run computes, with no knowledge of the stages that call them.
METHOD_PACKAGES = tuple(f"{PACKAGE}.{name}" for name in
                        ("masks", "trimap", "generator", "refine", "temporal", "foreground"))


def imported_modules(source: str, filename: str, importer: str, importer_is_package: bool = False
                     ) -> list[tuple[int, str]]:
    """(line, dotted) for every ``alphagan_video`` module path ``source`` imports: ``import M``
    gives M, ``from M import x`` gives M and ``M.x`` (x may be a submodule), relative imports
    resolved. Imports inside functions and ``TYPE_CHECKING`` blocks count."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(node.module, node.level, importer, importer_is_package)
            if base.split(".")[0] == PACKAGE:
                found.append((node.lineno, base))
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def _within(dotted: str, package: str) -> bool:
    return dotted == package or dotted.startswith(package + ".")


def stage_import_offenders(source: str, filename: str, importer: str, importer_is_package: bool = False) -> list[str]:
    """For a module of ``alphagan_video.stages``: every import of another stage module (a stage
    imports methods and the engine, never another stage); for a module of a method package: every
    import of ``alphagan_video.stages`` (methods never know the stages)."""
    found = set()
    for line, dotted in imported_modules(source, filename, importer, importer_is_package):
        if _within(importer, STAGES) and not importer_is_package:
            if _within(dotted, STAGES) and dotted != STAGES and not _within(dotted, importer):
                found.add((line, f"stage imports {'.'.join(dotted.split('.')[:3])}"))
        elif any(_within(importer, m) for m in METHOD_PACKAGES) and _within(dotted, STAGES):
            found.add((line, f"method imports {'.'.join(dotted.split('.')[:3])}"))
    return [f"{filename}:{line}: {what}" for line, what in sorted(found)]


def test_stages_import_no_other_stage_and_methods_import_no_stage():
    offenders = []
    for path in _source_files():
        offenders += stage_import_offenders(path.read_text(encoding="utf-8"), _rel(path), _module_name(path),
                                            path.name == "__init__.py")
    assert not offenders, ("a stage importing another stage, or a method importing a stage:\n"
                           + "\n".join(offenders))


def test_stage_import_checker_catches_planted_violations():
    def check(source: str, importer: str, is_pkg: bool = False) -> list[str]:
        return stage_import_offenders(source, "planted.py", importer, is_pkg)

    assert check("from alphagan_video.stages.temporal import TemporalStage\n", "alphagan_video.stages.mask") == [
        "planted.py:1: stage imports alphagan_video.stages.temporal"]
    assert check("def f():\n    from .trimap import TrimapStage\n", "alphagan_video.stages.mask") == [
        "planted.py:2: stage imports alphagan_video.stages.trimap"]
    assert check("from alphagan_video.stages import output\n", "alphagan_video.stages.coverage") == [
        "planted.py:1: stage imports alphagan_video.stages.output"]
    assert check("import alphagan_video.stages.upload as u\n", "alphagan_video.stages.mask") == [
        "planted.py:1: stage imports alphagan_video.stages.upload"]
    assert check("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                 "    from alphagan_video.stages.mask import MaskStage\n", "alphagan_video.refine.frames") == [
        "planted.py:3: method imports alphagan_video.stages.mask"]
    assert check("from alphagan_video import stages\n", "alphagan_video.masks", True) == [
        "planted.py:1: method imports alphagan_video.stages"]
    # Allowed: a stage importing methods and the engine; methods importing methods; front-ends
    # (the chain builder) importing stages.
    assert check("from alphagan_video.engine import Stage, Work\nfrom alphagan_video.trimap import make_trimap\n"
                 "from alphagan_video.temporal.smoothing import stabilize_mask\n", "alphagan_video.stages.mask") == []
    assert check("from alphagan_video.trimap import clamp_known\n", "alphagan_video.generator.scale") == []
    assert check("from alphagan_video.stages.mask import MaskStage\n", "alphagan_video.pipeline") == []


# ----------------------------------------------------------------------------- (g) packages are packages

def namespace_folder_offenders(folders: Iterable[tuple[str, set[str]]]) -> list[str]:
    """The folders (relative path, file names) holding modules but no ``__init__.py``: Python
    imports them from a checkout as namespace packages, but ``packages = find:`` does not
    install them."""
    return sorted(path for path, names in folders
                  if any(n.endswith(".py") for n in names) and "__init__.py" not in names)


def test_every_folder_of_modules_is_a_package():
    folders = [(_rel(p), {c.name for c in p.iterdir()}) for p in [PACKAGE_DIR, *PACKAGE_DIR.rglob("*")]
               if p.is_dir() and p.name != "__pycache__"]
    offenders = namespace_folder_offenders(folders)
    assert not offenders, "folders of modules without __init__.py (not installed):\n" + "\n".join(offenders)


def test_namespace_folder_checker_catches_planted_violations():
    assert namespace_folder_offenders([("alphagan_video/temporal", {"smoothing.py", "solve.py"}),
                                       ("alphagan_video/masks", {"__init__.py", "sam.py"}),
                                       ("alphagan_video/masks/models", {"NOTICE", "m.tflite"})]) == [
        "alphagan_video/temporal"]


# ----------------------------------------------------------------------------- (h) one mask spec parser

#: The functions allowed to split a string on ":" (module path relative to the repo, function):
#: the mask spec's one parser, and the device name (``cuda:1``), which is not a mask spec.
COLON_SPLITTERS = {("alphagan_video/masks/spec.py", "parse_mask_spec"),
                   ("alphagan_video/device.py", "resolve_device")}
_SPLITS = {"partition", "rpartition", "split", "rsplit", "index", "find", "rfind"}


def colon_split_offenders(source: str, filename: str, allowed: set[tuple[str, str]] = COLON_SPLITTERS) -> list[str]:
    """Every ``x.partition(":")`` / ``split(":")`` / ``index(":")`` ... outside the allowed
    functions: a mask spec (``plate:PATH``) is parsed once, by ``masks.spec.parse_mask_spec``,
    into a ``MaskSpec`` that everything else takes."""
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr in _SPLITS
                    and child.args and isinstance(child.args[0], ast.Constant) and child.args[0].value == ":"
                    and (filename, function) not in allowed):
                found.append(f"{filename}:{child.lineno}: .{child.func.attr}(\":\") in {function or '<module>'}")
            visit(child, name)

    visit(ast.parse(source, filename), "")
    return found


def test_mask_specs_are_parsed_in_one_function():
    offenders = []
    for path in _source_files():
        offenders += colon_split_offenders(path.read_text(encoding="utf-8"), _rel(path))
    assert not offenders, ("a string split on ':' outside masks.spec.parse_mask_spec (take its MaskSpec):\n"
                           + "\n".join(offenders))


def test_colon_split_checker_catches_planted_violations():
    planted = ('def _absolute_mask_spec(spec):\n    name, sep, arg = spec.partition(":")\n'
               'kind = cfg.mask.source.split(":", 1)[0]\n'
               'def f(s):\n    def g():\n        return s.index(":")\n    return s.partition("/")\n')
    assert colon_split_offenders(planted, "planted.py") == [
        'planted.py:2: .partition(":") in _absolute_mask_spec', 'planted.py:3: .split(":") in <module>',
        'planted.py:6: .index(":") in g']
    assert colon_split_offenders('def parse_mask_spec(s):\n    return s.partition(":")\n',
                                 "alphagan_video/masks/spec.py") == []
