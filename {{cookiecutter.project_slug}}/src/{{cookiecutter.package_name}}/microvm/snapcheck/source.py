"""Parse one source file into what the analysis needs: imports, functions, classes, calls and suppressions."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from .findings import Finding, ScanError
from .rules import RULES, SUPPRESSION_RULE

# Statements that contain other statements. A call in their header (an if test, a for
# iterable) has no simple statement around it.
COMPOUND_STATEMENTS = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.TryStar,
    ast.Match,
)

# A suppression comment, "# microvm: ignore[MVM003, MVM004] reason: <text>", at the start
# of a comment or after another comment on the same line.
SUPPRESSION_PATTERN = re.compile(r"(?:^|#)\s*microvm:\s*ignore\b(?P<rest>.*)$")
SUPPRESSION_BODY_PATTERN = re.compile(r"^\[(?P<ids>[^\]]*)\]\s*(?:reason:\s*(?P<reason>.*))?$")
RULE_ID_PATTERN = re.compile(r"^MVM\d{3}$")


@dataclass(eq=False)
class FunctionInfo:
    """A def or a lambda, with what the analysis learns about when it runs."""

    module: ModuleInfo
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    name: str
    parent: FunctionInfo | None
    class_info: ClassInfo | None
    nested: dict[str, FunctionInfo] = field(default_factory=dict)
    calls: list[CallSite] = field(default_factory=list)
    global_names: set[str] = field(default_factory=set)
    # Places where other code calls this function: (caller, line).
    callers: list[tuple[Owner, int]] = field(default_factory=list)
    memoised: bool = False
    lifecycle_callback: bool = False
    # Why this function runs before the snapshot, as a clause that follows its name, or None when it does not.
    build_reason: str | None = None

    @property
    def display(self) -> str:
        if isinstance(self.node, ast.Lambda):
            return f"the lambda on line {self.node.lineno}"
        prefix = f"{self.class_info.name}." if self.class_info else ""
        return f"{prefix}{self.name}()"

    def local_names(self) -> set[str]:
        """Return the parameters and the names this function assigns, minus those declared global."""
        arguments = self.node.args
        names = {argument.arg for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
        names.update(argument.arg for argument in (arguments.vararg, arguments.kwarg) if argument)
        body = [self.node.body] if isinstance(self.node, ast.Lambda) else self.node.body
        for node in walk_own_scope(body):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
        return names - self.global_names


@dataclass(eq=False)
class ClassInfo:
    """A class statement: its methods, bases and the factories of its fields."""

    module: ModuleInfo
    node: ast.ClassDef
    name: str
    methods: dict[str, FunctionInfo] = field(default_factory=dict)
    # The default_factory= values in the class body, which run each time the class is instantiated.
    factories: list[ast.expr] = field(default_factory=list)
    build_reason: str | None = None


Owner: TypeAlias = "ModuleInfo | FunctionInfo"
Target: TypeAlias = "FunctionInfo | ClassInfo"


@dataclass(eq=False)
class CallSite:
    """One call expression, the code that owns it and where it sits."""

    node: ast.Call
    owner: Owner
    # The part of the owner that evaluates the call, such as "in the body of class Config", or None for plain code.
    detail: str | None
    # The innermost simple statement around the call, for stores and suppressions, or None in a compound header.
    statement: ast.stmt | None
    # Calls whose arguments contain this call, outermost first, e.g. random.seed(...) around time.time().
    enclosing_calls: tuple[ast.Call, ...] = ()


@dataclass(frozen=True)
class Suppression:
    """A valid suppression comment: the rules it silences on its statement and the reason it gives."""

    rules: frozenset[str]
    reason: str


@dataclass(eq=False)
class ModuleInfo:
    """One parsed source file."""

    path: Path
    display: str  # the path as shown in findings: relative to the working directory when below it
    name: str  # dotted module name such as "my_app.app", or the file stem outside a package
    package: str | None  # the package that relative imports start from
    tree: ast.Module
    lines: list[str]
    imports: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    functions: dict[str, FunctionInfo] = field(default_factory=dict)  # module-level defs
    classes: dict[str, ClassInfo] = field(default_factory=dict)  # module-level classes
    assigned_names: set[str] = field(default_factory=set)  # names bound by module-level assignments
    instance_names: dict[str, ast.expr] = field(default_factory=dict)  # module-level `name = Callee(...)`
    all_functions: list[FunctionInfo] = field(default_factory=list)
    all_classes: list[ClassInfo] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)  # every call, whatever its owner
    module_calls: list[CallSite] = field(default_factory=list)  # calls evaluated at import
    suppressions: dict[int, Suppression] = field(default_factory=dict)
    invalid_suppressions: list[Finding] = field(default_factory=list)
    # Decorators written without a call, e.g. @register: applying one calls it when the def runs.
    decorator_uses: list[tuple[ast.expr, Owner, int]] = field(default_factory=list)

    def qualify(self, expression: ast.expr) -> str | None:
        """Return the qualified name an expression refers to through the imports, e.g. ``uuid.uuid4``."""
        chain = dotted_name(expression)
        if chain is None:
            return None
        head, _, rest = chain.partition(".")
        imported = self.imports.get(head)
        if imported is None:
            return None
        return f"{imported}.{rest}" if rest else imported

    def column(self, node: ast.expr | ast.stmt) -> int:
        """Return the 1-based character column of a node. Columns in ast count UTF-8 bytes."""
        line = self.lines[node.lineno - 1] if node.lineno <= len(self.lines) else ""
        return len(line.encode("utf-8")[: node.col_offset].decode("utf-8", errors="replace")) + 1


def dotted_name(expression: ast.expr) -> str | None:
    """Return "a.b.c" for a name or a chain of attributes on a name, else None."""
    parts: list[str] = []
    while isinstance(expression, ast.Attribute):
        parts.append(expression.attr)
        expression = expression.value
    if not isinstance(expression, ast.Name):
        return None
    parts.append(expression.id)
    return ".".join(reversed(parts))


def walk_own_scope(body: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Yield the nodes of a function body without entering nested functions, lambdas or classes."""
    stack = list(body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                stack.append(child)


class _ModuleReader:
    """Fill a ModuleInfo in one pass over its tree, tracking which code owns each call."""

    def __init__(self, module: ModuleInfo) -> None:
        self.module = module
        # Calls whose arguments are being visited. A lambda or def body starts a new, empty stack.
        self._enclosing_calls: list[ast.Call] = []

    def read(self) -> None:
        for statement in self.module.tree.body:
            self._visit(statement, self.module, None, None, None)

    def _visit(
        self,
        node: ast.AST,
        owner: Owner,
        detail: str | None,
        statement: ast.stmt | None,
        class_info: ClassInfo | None,
    ) -> None:
        if isinstance(node, ast.stmt) and not isinstance(node, COMPOUND_STATEMENTS):
            statement = node
        elif isinstance(node, COMPOUND_STATEMENTS):
            statement = None

        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._visit_def(node, owner, detail, class_info)
            return
        if isinstance(node, ast.Lambda):
            self._visit_lambda(node, owner, detail, statement)
            return
        if isinstance(node, ast.ClassDef):
            self._visit_class(node, owner, detail)
            return

        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self._record_import(node)
        elif isinstance(node, ast.Global) and isinstance(owner, FunctionInfo):
            owner.global_names.update(node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and owner is self.module and class_info is None:
            self._record_module_assignment(node, detail)
        elif isinstance(node, ast.Call):
            self._record_call(node, owner, detail, statement, class_info)
            return

        for child in ast.iter_child_nodes(node):
            self._visit(child, owner, detail, statement, class_info)

    def _record_call(
        self,
        node: ast.Call,
        owner: Owner,
        detail: str | None,
        statement: ast.stmt | None,
        class_info: ClassInfo | None,
    ) -> None:
        site = CallSite(node, owner, detail, statement, tuple(self._enclosing_calls))
        self.module.calls.append(site)
        if isinstance(owner, FunctionInfo):
            owner.calls.append(site)
        else:
            self.module.module_calls.append(site)
        if class_info is not None and owner is self.module:
            class_info.factories.extend(_field_factories(node))

        self._visit(node.func, owner, detail, statement, class_info)
        self._enclosing_calls.append(node)
        for argument in [*node.args, *(keyword.value for keyword in node.keywords)]:
            self._visit(argument, owner, detail, statement, class_info)
        self._enclosing_calls.pop()

    def _visit_def(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        owner: Owner,
        detail: str | None,
        class_info: ClassInfo | None,
    ) -> None:
        info = self._new_function(node, node.name, owner, class_info)
        if class_info is not None:
            class_info.methods[node.name] = info
        elif isinstance(owner, FunctionInfo):
            owner.nested[node.name] = info
        elif owner is self.module and detail is None:
            self.module.functions[node.name] = info

        # Decorators and default values are evaluated when the def statement runs, in the enclosing code.
        for decorator in node.decorator_list:
            self._visit(decorator, owner, f"in a decorator of {node.name}()", None, None)
            if not isinstance(decorator, ast.Call):
                self.module.decorator_uses.append((decorator, owner, node.lineno))
        defaults = [*node.args.defaults, *(value for value in node.args.kw_defaults if value is not None)]
        for default in defaults:
            self._visit(default, owner, f"in a default argument value of {node.name}()", None, None)
        saved, self._enclosing_calls = self._enclosing_calls, []
        for statement in node.body:
            self._visit(statement, info, None, None, None)
        self._enclosing_calls = saved

    def _visit_lambda(self, node: ast.Lambda, owner: Owner, detail: str | None, statement: ast.stmt | None) -> None:
        info = self._new_function(node, "<lambda>", owner, None)
        defaults = [*node.args.defaults, *(value for value in node.args.kw_defaults if value is not None)]
        for default in defaults:
            self._visit(default, owner, detail, statement, None)
        saved, self._enclosing_calls = self._enclosing_calls, []
        self._visit(node.body, info, None, statement, None)
        self._enclosing_calls = saved

    def _visit_class(self, node: ast.ClassDef, owner: Owner, detail: str | None) -> None:
        info = ClassInfo(self.module, node, node.name)
        self.module.all_classes.append(info)
        if owner is self.module and detail is None:
            self.module.classes[node.name] = info
        header = [*node.decorator_list, *node.bases, *(keyword.value for keyword in node.keywords)]
        for expression in header:
            self._visit(expression, owner, detail, None, None)
        # A class body runs when the class statement runs, in the enclosing code.
        body_detail = f"in the body of class {node.name}"
        for statement in node.body:
            self._visit(statement, owner, body_detail, None, info)

    def _new_function(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
        name: str,
        owner: Owner,
        class_info: ClassInfo | None,
    ) -> FunctionInfo:
        parent = owner if isinstance(owner, FunctionInfo) else None
        info = FunctionInfo(self.module, node, name, parent, class_info)
        self.module.all_functions.append(info)
        return info

    def _record_import(self, node: ast.Import | ast.ImportFrom) -> None:
        imports = self.module.imports
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    imports[alias.asname] = alias.name
                else:
                    head = alias.name.partition(".")[0]
                    imports[head] = head
            return
        base = _resolve_relative(self.module.package, node.level, node.module)
        for alias in node.names:
            if alias.name != "*":
                imports[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name

    def _record_module_assignment(self, node: ast.Assign | ast.AnnAssign, detail: str | None) -> None:
        if detail is not None:
            return
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            for name_node in ast.walk(target):
                if isinstance(name_node, ast.Name):
                    self.module.assigned_names.add(name_node.id)
        if isinstance(node.value, ast.Call) and len(targets) == 1 and isinstance(targets[0], ast.Name):
            self.module.instance_names[targets[0].id] = node.value.func


def _resolve_relative(package: str | None, level: int, module: str | None) -> str:
    """Return the absolute module of an import. A relative import that cannot be resolved keeps its dots."""
    if level == 0:
        return module or ""
    if package is not None:
        parts = package.split(".")
        if level - 1 < len(parts):
            base = ".".join(parts[: len(parts) - (level - 1)])
            return f"{base}.{module}" if module else base
    return "." * level + (module or "")


def _field_factories(call: ast.Call) -> list[ast.expr]:
    """Return the default factories that a dataclass, pydantic or attrs field call declares."""
    factories = [keyword.value for keyword in call.keywords if keyword.arg == "default_factory"]
    callee = dotted_name(call.func) or ""
    if callee.rpartition(".")[2] in {"ib", "attrib", "field"}:
        factories += [keyword.value for keyword in call.keywords if keyword.arg == "factory"]
    return factories


def _read_suppressions(module: ModuleInfo, source: str) -> None:
    """Parse every ``# microvm: ignore[...]`` comment, and turn a malformed one into an MVM008 finding."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = SUPPRESSION_PATTERN.search(token.string)
        if match is None:
            continue
        line, column = token.start
        problem, suppression = _parse_suppression(match.group("rest").strip())
        if suppression is not None:
            module.suppressions[line] = suppression
            continue
        module.invalid_suppressions.append(
            Finding(
                SUPPRESSION_RULE,
                module.display,
                line,
                column + 1,
                f"The suppression comment {token.string.strip()!r} is invalid: {problem}.",
            )
        )


def _parse_suppression(rest: str) -> tuple[str, Suppression | None]:
    body = SUPPRESSION_BODY_PATTERN.match(rest)
    if body is None:
        return "it must name the rules in brackets, as in ignore[MVM003]", None
    rule_ids = [rule_id.strip() for rule_id in body.group("ids").split(",") if rule_id.strip()]
    if not rule_ids:
        return "the brackets name no rule", None
    for rule_id in rule_ids:
        if not RULE_ID_PATTERN.match(rule_id) or rule_id not in RULES:
            known = ", ".join(rule for rule in RULES if rule != SUPPRESSION_RULE)
            return f"{rule_id!r} is not a rule id; use one of {known}", None
        if rule_id == SUPPRESSION_RULE:
            return f"{SUPPRESSION_RULE} cannot be suppressed", None
    reason = (body.group("reason") or "").strip()
    if not re.search(r"[^\W\d_]{2,}", reason):
        return "it gives no reason; add 'reason:' and why the shared value is safe", None
    return "", Suppression(frozenset(rule_ids), reason)


def _module_name(path: Path) -> tuple[str, str | None]:
    """Return the dotted module name of a file and its package, from the __init__.py files around it."""
    parts = [] if path.name == "__init__.py" else [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file():
        parts.insert(0, directory.name)
        if directory.parent == directory:
            break
        directory = directory.parent
    name = ".".join(parts)
    if path.name == "__init__.py":
        return name, name
    package = name.rpartition(".")[0] or None
    return name, package


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_module(path: Path) -> ModuleInfo:
    """Read and parse one file, or raise ScanError naming the file when it cannot be read or parsed."""
    display = _display_path(path)
    try:
        with tokenize.open(path) as stream:
            source = stream.read()
    except (OSError, SyntaxError, UnicodeDecodeError) as error:
        raise ScanError(f"{display}: cannot read the file: {error}") from error
    try:
        tree = ast.parse(source, filename=display)
    except SyntaxError as error:
        raise ScanError(
            f"{display}:{error.lineno}:{error.offset}: does not parse: {error.msg}; "
            "fix the syntax error and run the check again"
        ) from error
    except ValueError as error:
        raise ScanError(f"{display}: does not parse: {error}") from error
    name, package = _module_name(path)
    module = ModuleInfo(path, display, name, package, tree, source.splitlines())
    _ModuleReader(module).read()
    try:
        _read_suppressions(module, source)
    except (tokenize.TokenError, SyntaxError) as error:
        raise ScanError(f"{display}: cannot read its comments: {error}") from error
    return module
