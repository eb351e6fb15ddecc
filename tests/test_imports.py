"""The package's import structure: no import cycle between the modules of ``ovseg_bench`` and
``methods`` (read from their source, not by importing them), no function-local import that
closes one, and every module importable on its own in a fresh interpreter."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ('ovseg_bench', 'methods')

def modules(root=REPO, packages=PACKAGES):
    """``{dotted module name: source path}`` of every module of ``packages`` under ``root``."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob('*.py')):
            parts = list(path.relative_to(root).with_suffix('').parts)
            if parts[-1] == '__init__':
                parts.pop()
            found['.'.join(parts)] = path
    return found


def _imported_names(module, is_package, node):
    """The dotted names an ``import`` / ``from ... import`` statement may load."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module if is_package else module.rpartition('.')[0]
    if node.level:
        base = '.'.join(base.split('.')[:len(base.split('.')) - node.level + 1])
        base = '.'.join(filter(None, (base, node.module)))
    else:
        base = node.module
    return [base] + [f'{base}.{alias.name}' for alias in node.names]


def import_graph(root=REPO, packages=PACKAGES):
    """``{module: {module it imports: 'top' or 'local'}}`` over the package's own modules.

    ``local``: only from inside a function or class body. Importing ``a.b.c`` also runs the
    ``__init__`` of ``a`` and ``a.b``, so those are edges too (except a module's own
    packages, which are always loaded before it)."""
    known = modules(root, packages)
    graph = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        top = {id(node) for node in tree.body}
        edges = graph[module] = {}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            kind = 'top' if id(node) in top else 'local'
            for name in _imported_names(module, path.name == '__init__.py', node):
                while name and name not in known:
                    name = name.rpartition('.')[0]
                parts = name.split('.')
                for i in range(1, len(parts) + 1):
                    target = '.'.join(parts[:i])
                    if target in known and target != module and \
                            not module.startswith(target + '.'):
                        if edges.get(target) != 'top':
                            edges[target] = kind
    return graph


def module_level(graph):
    """The graph without its function-local edges."""
    return {m: {t for t, kind in edges.items() if kind == 'top'} for m, edges in graph.items()}


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_relative_import_names_a_module():
    """Also the function-local ones, which importing the modules does not run."""
    known = modules()
    unresolved = []
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = _imported_names(module, path.name == '__init__.py', node)[0]
                if base not in known:
                    unresolved.append(f'{path.relative_to(REPO)}:{node.lineno} {base}')
    assert unresolved == []


def test_the_graph_sees_relative_absolute_and_function_local_imports(tmp_path):
    files = {'p/__init__.py': 'from . import a\n',
             'p/a.py': 'import os\nfrom .sub.b import f\n',
             'p/sub/__init__.py': '',
             'p/sub/b.py': 'def f():\n    from p import a\n    import p.sub.c as c\n',
             'p/sub/c.py': 'from ..a import f\n'}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, ('p',))
    assert graph == {'p': {'p.a': 'top'}, 'p.a': {'p.sub': 'top', 'p.sub.b': 'top'},
                     'p.sub': {}, 'p.sub.b': {'p.a': 'local', 'p.sub.c': 'local'},
                     'p.sub.c': {'p.a': 'top'}}
    assert cycles(graph) == [['p.a', 'p.sub.b', 'p.sub.c']]   # closed by b's local imports
    assert cycles(module_level(graph)) == []


def test_no_import_cycle_between_module_level_imports():
    assert cycles(module_level(import_graph())) == []


def test_no_function_local_import_closes_a_cycle():
    graph = import_graph()
    edges = {m: set(targets) for m, targets in graph.items()}
    closing = {(m, t) for component in cycles(edges) for m in component
               for t in graph[m] if t in component and graph[m][t] == 'local'}
    assert closing == set(), 'move the shared code to a module both can import'


def _dependency_order(graph):
    order, seen = [], set()

    def visit(v):
        if v not in seen:
            seen.add(v)
            for w in sorted(graph[v]):
                visit(w)
            order.append(v)

    for v in sorted(graph):
        visit(v)
    return order


def test_every_module_imports_in_a_fresh_interpreter():
    """Every module imported, in dependency order, by a new Python process: a module whose
    import fails (a name moved by a refactor, a registration clash) is named with its
    traceback."""
    order = _dependency_order(module_level(import_graph()))
    script = ('import importlib, json, sys, traceback\n'
              'for name in json.loads(sys.argv[1]):\n'
              '    try:\n'
              '        importlib.import_module(name)\n'
              '    except BaseException:\n'
              '        sys.exit(f"importing {name} failed:\\n{traceback.format_exc()}")\n')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, '-c', script, json.dumps(order)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
