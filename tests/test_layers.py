"""The house plan, checked: no import circle inside composer, and no module imports a higher layer.

Imports inside functions count too: a lazy import is still a dependency, and the
layer map is the design's data flow (load → plan → render → assemble) written down.
"""
from __future__ import annotations

import ast
from pathlib import Path

import composer

ROOT = Path(composer.__file__).parent

# Lowest first. A module may import its own layer or any lower one.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "atomic", "events", "timecode", "metrics", "version"),
    ("request", "media", "colour", "yuv", "drift", "seams"),
    ("storyboard", "backends"),
    ("planner",),
    ("assemble", "pieces", "manifest", "otio", "rendering.cache", "store"),
    ("rendering", "review"),
    ("cli", "testing", "__main__", ""),
]


def module_names() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if name else []
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # imports under `if TYPE_CHECKING:` are for the type checker only, not a runtime dependency
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_pkg else here[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("composer"):
                target = node.module.removeprefix("composer").lstrip(".")
            else:
                continue
            for cand in (target, *(f"{target}.{a.name}".lstrip(".") for a in node.names)):
                if cand in known and cand != name:
                    found.add(cand)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("composer."):
                    cand = a.name.removeprefix("composer.")
                    if cand in known and cand != name:
                        found.add(cand)
    return found


def layer_of(name: str) -> int:
    best, best_len = None, -1
    for i, group in enumerate(LAYERS):
        for prefix in group:
            hit = name == prefix or (prefix and name.startswith(prefix + "."))
            if hit and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, f"composer.{name} is in no layer: add it to LAYERS in {__file__}"
    return best


def graph() -> dict[str, set[str]]:
    known = module_names()
    return {n: imports(n, p, known) for n, p in known.items()}


def test_every_module_has_a_layer():
    for name in module_names():
        layer_of(name)


def test_no_module_imports_a_higher_layer():
    bad = [f"composer.{a or '__init__'} (layer {layer_of(a)}) imports composer.{b} (layer {layer_of(b)})"
           for a, deps in graph().items() for b in deps if layer_of(b) > layer_of(a)]
    assert not bad, "\n".join(sorted(bad))


def test_no_import_circle():
    g = graph()
    # a package importing its own submodules (re-exports) is not a circle; drop those edges
    g = {a: {b for b in deps if not (a and b.startswith(a + ".")) and a != ""} for a, deps in g.items()}
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(n: str) -> None:
        seen[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if seen.get(m) == 1:
                cycles.append(" -> ".join(stack[stack.index(m):] + [m]))
            elif m not in seen:
                visit(m)
        stack.pop()
        seen[n] = 2

    for n in sorted(g):
        if n not in seen:
            visit(n)
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    """The checks above could pass by finding nothing; make sure an upward import is found."""
    fake = tmp_path / "timecode.py"
    fake.write_text("from .rendering import pipeline\n")
    known = {**module_names(), "timecode": fake}
    deps = imports("timecode", fake, known)
    assert deps == {"rendering", "rendering.pipeline"}
    assert layer_of("rendering.pipeline") > layer_of("timecode")
