"""Parse the subset of the ROS 2 YAML launch format that ``launch/reach.launch.yaml`` uses.

``launch`` / ``launch_ros`` are not on PyPI, so a pip-only install runs the same launch file
through this parser and :mod:`l2l_nmhw_ros.ros.tools.launcher`. Supported (everything else is an
error that names the entity, never silently skipped):

- ``arg``: ``name``, ``default``, ``description``, ``choice`` (list of ``{value: ...}``).
- ``node``: ``pkg``, ``exec``, ``name``, ``namespace``, ``output`` (``screen`` | ``log`` |
  ``both``), ``args``, ``ros_args``, ``on_exit`` (``shutdown``), ``if`` / ``unless``,
  ``param`` (``{from: file}`` or ``{name, value}``), ``remap`` (``{from, to}``),
  ``respawn`` (a truth value, see conditions), ``respawn_delay`` (s, a finite float >= 0,
  default 0), ``respawn_max_retries`` (an int >= -1; -1, the default, = no limit), as
  launch's ``ExecuteProcess`` (every attribute may use substitutions).
- substitutions: ``$(var NAME)``, ``$(find-pkg-share PKG)``, ``$(env NAME [DEFAULT])``,
  ``$(command 'CMD')`` (stdout of the command, no shell),
  ``$(eval 'EXPR')`` with a restricted evaluator (literals, ``==``, ``!=``, ``in``, ``not in``,
  ``and``, ``or``, ``not``, conditional expressions; no names, calls or attributes), nesting
  allowed (``$(eval '"$(var arm)" == "sim"')``).
- conditions: ``true``/``false``/``1``/``0`` (any case), as ``launch.conditions.IfCondition``.

Substitutions of a node are resolved only when its condition holds, so a node that only makes
sense on a ROS 2 distro (``rviz2``) may use substitutions this parser does not know.

The module is ROS-free (it imports neither rclpy nor launch); ``find-pkg-share`` uses
``ament_index_python`` when available and falls back to the source tree for this package.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from l2l_nmhw_ros.errors import ConfigError

PACKAGE = 'l2l_nmhw_ros'
_NODE_KEYS = {'pkg', 'exec', 'name', 'namespace', 'output', 'args', 'ros_args', 'on_exit', 'if',
              'unless', 'param', 'remap', 'respawn', 'respawn_delay', 'respawn_max_retries'}
_ARG_KEYS = {'name', 'default', 'description', 'choice'}


class LaunchError(ConfigError):
    """A launch file, a launch argument or a substitution is invalid."""


@dataclasses.dataclass(frozen=True)
class LaunchArg:
    """A declared launch argument (``arg`` entity)."""

    name: str
    default: str | None
    description: str = ''
    choices: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node to start, with every substitution resolved.

    Attributes:
        pkg: package of the executable.
        exec: executable name (console script on pip-only installs).
        name: node name (``__node:=``); empty keeps the executable's default.
        namespace: namespace (``__ns:=``), absolute, '' for the root.
        params_files: parameter files (``--params-file``), in order.
        params: single parameters ``(name, value text)``, passed in a parameter file written at
            launch (see :meth:`parameter_values`).
        remaps: ``(from, to)`` remapping rules (``-r from:=to``).
        args: extra command-line arguments before ``--ros-args``.
        ros_args: extra arguments after ``--ros-args``.
        output: ``screen``, ``log`` or ``both``.
        on_exit_shutdown: when this node exits, shut the whole launch down (also when it would
            be respawned: as in ``launch``, the shutdown wins).
        respawn: restart the node when it exits (any status) while the launch runs.
        respawn_delay: seconds between the exit and the restart.
        respawn_max_retries: restarts allowed; -1 = no limit.
    """

    pkg: str
    exec: str
    name: str = ''
    namespace: str = ''
    params_files: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    remaps: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    ros_args: tuple[str, ...] = ()
    output: str = 'log'
    on_exit_shutdown: bool = False
    respawn: bool = False
    respawn_delay: float = 0.0
    respawn_max_retries: int = -1

    @property
    def label(self) -> str:
        """Name used in logs: the node name, else the executable."""
        return self.name or self.exec

    def parameter_values(self) -> dict[str, Any]:
        """The single parameters as a nested ``ros__parameters`` mapping, typed as launch_ros does.

        Each value string is read as YAML (``true`` -> bool, ``42`` -> int, ``1.0`` -> float,
        ``[1, 2]`` -> list); text that does not give a parameter type (empty, ``null``, a
        mapping) stays a string. Dotted names nest (``control.checkpoint``).
        """
        out: dict[str, Any] = {}
        for name, text in self.params:
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                value = text
            if value is None or isinstance(value, dict):
                value = text
            node = out
            *parents, leaf = name.split('.')
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return out

    def command_line(self, executable: str, params_file: str | None = None) -> list[str]:
        """Return the argv that starts this node with ``executable``.

        Args:
            executable: resolved executable path.
            params_file: file holding :meth:`parameter_values` (``launch_ros`` also passes single
                parameters through a temporary parameter file); it comes after the ``from``
                files, so single parameters override them.
        """
        argv = [executable, *self.args, '--ros-args']
        if self.name:
            argv += ['-r', f'__node:={self.name}']
        if self.namespace:
            argv += ['-r', f'__ns:={self.namespace}']
        for f in self.params_files:
            argv += ['--params-file', f]
        if params_file is not None:
            argv += ['--params-file', params_file]
        for a, b in self.remaps:
            argv += ['-r', f'{a}:={b}']
        argv += list(self.ros_args)
        return argv


@dataclasses.dataclass(frozen=True)
class LaunchDescription:
    """A parsed launch file: declared arguments, their values, the nodes whose condition holds."""

    path: Path
    args: tuple[LaunchArg, ...]
    values: Mapping[str, str]
    nodes: tuple[NodeSpec, ...]
    skipped: tuple[str, ...] = ()


def find_package_share(pkg: str) -> Path:
    """Return the share directory of ``pkg``.

    Looks in the ament index (``AMENT_PREFIX_PATH``), then in this interpreter's prefix
    (``<venv>/share/<pkg>``, where the pip wheels of ROS 2 put theirs), then, for this package, in
    the source tree.

    Raises:
        LaunchError: if the package is not found.
    """
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(pkg))
    except ImportError:  # pragma: no cover - ament_index_python ships with rclpy
        pass
    except (LookupError, OSError, ValueError):  # not indexed, or AMENT_PREFIX_PATH unset
        pass
    local = Path(sys.prefix) / 'share' / pkg
    if (local / 'package.xml').is_file():
        return local
    if pkg == PACKAGE:
        return Path(__file__).resolve().parents[2]
    raise LaunchError(f'$(find-pkg-share {pkg}): package {pkg!r} not found in the ament index '
                      f"(AMENT_PREFIX_PATH={os.environ.get('AMENT_PREFIX_PATH', '')!r}) nor in "
                      f'{local.parent}')


# ---- substitutions ---------------------------------------------------------------------------

def _split_args(body: str) -> list[str]:
    """Split the argument text of a substitution on blanks, honouring quotes and nesting."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    quote = ''
    i = 0
    started = False
    while i < len(body):
        c = body[i]
        if quote:
            if c == quote and depth == 0:
                quote = ''
            else:
                cur.append(c)
        elif body.startswith('$(', i):
            depth += 1
            cur.append('$(')
            started = True
            i += 2
            continue
        elif c == ')' and depth:
            depth -= 1
            cur.append(c)
        elif c in '\'"' and depth == 0:
            quote = c
            started = True
        elif c.isspace() and depth == 0:
            if started:
                out.append(''.join(cur))
                cur, started = [], False
        else:
            cur.append(c)
            started = True
        i += 1
    if quote:
        raise LaunchError(f'unterminated quote in substitution arguments {body!r}')
    if started:
        out.append(''.join(cur))
    return out


def _find_close(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``$(`` whose body starts at ``start``."""
    depth = 1
    quote = ''
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ''
        elif text.startswith('$(', i):
            depth += 1
            i += 2
            continue
        elif c == "'":
            quote = c
        elif c == ')':
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise LaunchError(f'unbalanced "$(" in {text!r}')


_ALLOWED_AST = (ast.Expression, ast.Constant, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.IfExp,
                ast.Tuple, ast.List, ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.And, ast.Or,
                ast.Not, ast.Load)


def safe_eval(expr: str) -> str:
    """Evaluate a restricted Python expression of ``$(eval ...)``; return it as launch text.

    Only literals, comparisons (``==``, ``!=``, ``in``, ``not in``), ``and``/``or``/``not`` and
    conditional expressions are allowed. Booleans come back as ``'true'``/``'false'`` (what
    ``IfCondition`` accepts).

    Raises:
        LaunchError: on syntax errors or any other construct (names, calls, attributes, ...).
    """
    try:
        tree = ast.parse(expr.strip(), mode='eval')
    except SyntaxError as exc:
        raise LaunchError(f'$(eval {expr!r}): {exc.msg}') from None
    for n in ast.walk(tree):
        if not isinstance(n, _ALLOWED_AST):
            raise LaunchError(f'$(eval {expr!r}): {type(n).__name__} is not allowed (only '
                              'literals, comparisons and boolean operators)')
    value = eval(compile(tree, '<launch eval>', 'eval'), {'__builtins__': {}}, {})  # noqa: S307
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def substitute(text: Any, values: Mapping[str, str],
               share: Callable[[str], Path] = find_package_share) -> str:
    """Resolve every ``$(...)`` in ``text`` (innermost first) and return the string.

    Raises:
        LaunchError: unknown substitution, undeclared ``var``, unknown package.
    """
    if isinstance(text, bool):
        return 'true' if text else 'false'
    if not isinstance(text, str):
        return str(text)
    out: list[str] = []
    i = 0
    while i < len(text):
        j = text.find('$(', i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        end = _find_close(text, j + 2)
        out.append(_resolve(text[j + 2:end], values, share))
        i = end + 1
    return ''.join(out)


def _resolve(body: str, values: Mapping[str, str], share: Callable[[str], Path]) -> str:
    parts = _split_args(body)
    if not parts:
        raise LaunchError('empty substitution "$()"')
    kind, raw = parts[0], parts[1:]
    args = [substitute(a, values, share) for a in raw]
    if kind == 'var':
        if len(args) != 1:
            raise LaunchError(f'$(var ...) takes one name, got {args}')
        if args[0] not in values:
            raise LaunchError(f'$(var {args[0]}): no launch argument of that name '
                              f'(declared: {sorted(values)})')
        return values[args[0]]
    if kind == 'find-pkg-share':
        if len(args) != 1:
            raise LaunchError(f'$(find-pkg-share ...) takes one package, got {args}')
        return str(share(args[0]))
    if kind == 'env':
        if len(args) not in (1, 2):
            raise LaunchError(f'$(env NAME [DEFAULT]) got {args}')
        if args[0] in os.environ:
            return os.environ[args[0]]
        if len(args) == 2:
            return args[1]
        raise LaunchError(f'$(env {args[0]}): environment variable not set')
    if kind == 'command':
        if len(args) != 1:
            raise LaunchError(f'$(command ...) takes one quoted command line, got {args}')
        import subprocess
        try:
            res = subprocess.run(shlex.split(args[0]), capture_output=True, text=True,  # noqa: S603
                                 timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LaunchError(f'$(command {args[0]!r}) failed: {exc}') from None
        if res.returncode != 0:
            raise LaunchError(f'$(command {args[0]!r}) exited with {res.returncode}: '
                              f'{res.stderr.strip()[:200]}')
        return res.stdout
    if kind == 'eval':
        if len(args) != 1:
            raise LaunchError(f'$(eval ...) takes one quoted expression, got {args}')
        return safe_eval(args[0])
    raise LaunchError(f'unsupported substitution $({kind} ...) (supported: var, find-pkg-share, '
                      'env, eval, command)')


def as_bool(text: str, what: str) -> bool:
    """Launch truth value (``IfCondition``): true/false/1/0 in any case.

    Raises:
        LaunchError: any other text.
    """
    t = text.strip().lower()
    if t in ('true', '1'):
        return True
    if t in ('false', '0'):
        return False
    raise LaunchError(f'{what}: expected true/false/1/0, got {text!r}')


# ---- the file --------------------------------------------------------------------------------

def _entity(item: Any, where: str) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(item, Mapping) or len(item) != 1:
        raise LaunchError(f'{where}: each entry of "launch" must be a one-key mapping '
                          f'(arg/node), got {item!r}')
    (kind, body), = item.items()
    if not isinstance(body, Mapping):
        raise LaunchError(f'{where}: {kind} must be a mapping, got {body!r}')
    return kind, body


def _parse_arg(body: Mapping[str, Any], where: str) -> LaunchArg:
    unknown = set(body) - _ARG_KEYS
    if unknown:
        raise LaunchError(f'{where}: unknown arg attribute(s) {sorted(unknown)}')
    if 'name' not in body:
        raise LaunchError(f'{where}: arg without name')
    choices = []
    for c in body.get('choice', []) or []:
        if not isinstance(c, Mapping) or 'value' not in c:
            raise LaunchError(f'{where}: choice entries are {{value: ...}}, got {c!r}')
        choices.append(substitute(c['value'], {}))
    default = body.get('default')
    return LaunchArg(name=str(body['name']),
                     default=None if default is None else _plain(default),
                     description=str(body.get('description', '')), choices=tuple(choices))


def _plain(v: Any) -> str:
    if isinstance(v, bool):
        return 'true' if v else 'false'
    return str(v)


def _condition(body: Mapping[str, Any], values: Mapping[str, str], where: str,
               share: Callable[[str], Path]) -> bool:
    ok = True
    if 'if' in body:
        ok = ok and as_bool(substitute(body['if'], values, share), f'{where}: if')
    if 'unless' in body:
        ok = ok and not as_bool(substitute(body['unless'], values, share), f'{where}: unless')
    return ok


def _parse_node(body: Mapping[str, Any], values: Mapping[str, str], where: str,
                share: Callable[[str], Path]) -> NodeSpec:
    unknown = set(body) - _NODE_KEYS
    if unknown:
        raise LaunchError(f'{where}: unknown node attribute(s) {sorted(unknown)}')
    for key in ('pkg', 'exec'):
        if key not in body:
            raise LaunchError(f'{where}: node without {key}')

    def sub(v: Any) -> str:
        return substitute(v, values, share)

    files, params = [], []
    for p in body.get('param', []) or []:
        if not isinstance(p, Mapping):
            raise LaunchError(f'{where}: param entries are mappings, got {p!r}')
        if 'from' in p:
            files.append(sub(p['from']))
        elif 'name' in p and 'value' in p:
            params.append((sub(p['name']), sub(p['value'])))
        else:
            raise LaunchError(f'{where}: param needs "from" or "name" and "value", got {p!r}')
    remaps = []
    for r in body.get('remap', []) or []:
        if not isinstance(r, Mapping) or 'from' not in r or 'to' not in r:
            raise LaunchError(f'{where}: remap entries are {{from, to}}, got {r!r}')
        remaps.append((sub(r['from']), sub(r['to'])))
    output = sub(body.get('output', 'log'))
    if output not in ('screen', 'log', 'both'):
        raise LaunchError(f'{where}: output must be screen, log or both, got {output!r}')
    on_exit = sub(body['on_exit']) if 'on_exit' in body else ''
    if on_exit not in ('', 'shutdown'):
        raise LaunchError(f'{where}: on_exit supports only "shutdown", got {on_exit!r}')
    respawn = as_bool(sub(body['respawn']), f'{where}: respawn') if 'respawn' in body else False
    delay_text = sub(body.get('respawn_delay', '0.0'))
    try:
        delay = float(delay_text)
    except ValueError:
        delay = math.nan
    if not (math.isfinite(delay) and delay >= 0.0):
        raise LaunchError(f'{where}: respawn_delay must be a finite number of seconds >= 0, got '
                          f'{delay_text!r}')
    retries_text = sub(body.get('respawn_max_retries', '-1'))
    try:
        retries = int(retries_text)
    except ValueError:
        retries = -2
    if retries < -1:
        raise LaunchError(f'{where}: respawn_max_retries must be an integer >= -1 (-1: no limit), '
                          f'got {retries_text!r}')
    ns = sub(body.get('namespace', ''))
    if ns and not ns.startswith('/'):
        ns = '/' + ns
    return NodeSpec(pkg=sub(body['pkg']), exec=sub(body['exec']), name=sub(body.get('name', '')),
                    namespace=ns.rstrip('/') if ns != '/' else '', params_files=tuple(files),
                    params=tuple(params), remaps=tuple(remaps),
                    args=tuple(shlex.split(sub(body.get('args', '')))),
                    ros_args=tuple(shlex.split(sub(body.get('ros_args', '')))), output=output,
                    on_exit_shutdown=on_exit == 'shutdown', respawn=respawn,
                    respawn_delay=delay, respawn_max_retries=retries)


def load_launch_file(path: str | Path, arguments: Mapping[str, str] | None = None,
                     share: Callable[[str], Path] = find_package_share) -> LaunchDescription:
    """Parse a YAML launch file with the given ``name:=value`` arguments.

    Args:
        path: the launch file.
        arguments: launch argument values (strings, as on the ``ros2 launch`` command line).
        share: package share resolver (tests inject one).

    Returns:
        The description: declared args, resolved values, nodes whose condition holds (in file
        order) and the labels of nodes skipped by their condition.

    Raises:
        LaunchError: malformed file, unknown entity or attribute, undeclared argument, missing
            value of an argument without default, value outside ``choice``, bad substitution.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    with open(path, encoding='utf-8') as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, Mapping) or not isinstance(doc.get('launch'), list):
        raise LaunchError(f'{path}: expected a top-level "launch:" list')
    given = dict(arguments or {})
    declared: list[LaunchArg] = []
    values: dict[str, str] = {}
    nodes: list[NodeSpec] = []
    skipped: list[str] = []
    for idx, item in enumerate(doc['launch']):
        where = f'{path.name}: launch[{idx}]'
        kind, body = _entity(item, where)
        if kind == 'arg':
            a = _parse_arg(body, where)
            declared.append(a)
            if a.name in given:
                val = given[a.name]
            elif a.default is not None:
                val = substitute(a.default, values, share)
            else:
                raise LaunchError(f'{path.name}: launch argument {a.name!r} has no default and '
                                  f'was not given ({a.description})')
            if a.choices and val not in a.choices:
                raise LaunchError(f'{path.name}: argument {a.name}:={val!r} is not one of '
                                  f'{list(a.choices)}')
            values[a.name] = val
        elif kind == 'node':
            if not _condition(body, values, where, share):
                skipped.append(str(body.get('name') or body.get('exec')))
                continue
            nodes.append(_parse_node(body, values, where, share))
        else:
            raise LaunchError(f'{where}: unsupported entity {kind!r} (supported: arg, node)')
    unknown = set(given) - {a.name for a in declared}
    if unknown:
        raise LaunchError(f'{path.name}: unknown launch argument(s) {sorted(unknown)} '
                          f'(declared: {[a.name for a in declared]})')
    return LaunchDescription(path=path, args=tuple(declared), values=values, nodes=tuple(nodes),
                             skipped=tuple(skipped))
