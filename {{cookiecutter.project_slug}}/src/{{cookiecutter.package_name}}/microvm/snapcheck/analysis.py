"""Decide which code runs before the snapshot, and report the calls in it that make shared values."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence

from .findings import Finding
from .rules import rule_for
from .source import CallSite, ClassInfo, FunctionInfo, ModuleInfo, Owner, Target, dotted_name, walk_own_scope

# Calls longer than this many characters are shown as name(...) in messages.
MAX_CALL_TEXT = 60
# Maximum length of a chain of re-exports or base classes that lookups follow. The limit also ends cycles.
MAX_RESOLUTION_DEPTH = 8

# The lifecycle API. Functions decorated with these or passed to them run after /run.
LIFECYCLE_FUNCTIONS = frozenset({"per_vm", "on_run", "on_resume", "on_suspend", "on_terminate"})
MEMOISING_DECORATORS = frozenset({"functools.lru_cache", "functools.cache"})
CONTEXT_MANAGER_DECORATORS = frozenset({"contextlib.asynccontextmanager", "contextlib.contextmanager"})
# Flask finds an app factory by these names, and servers call it when they start.
APP_FACTORY_NAMES = frozenset({"create_app", "make_app"})
# Flask and Quart hooks that run once, when the server starts serving.
STARTUP_DECORATOR_ATTRIBUTES = frozenset({"before_first_request", "before_serving"})
# aiohttp's Application signals whose handlers run when the server starts.
AIOHTTP_STARTUP_SIGNALS = {
    "on_startup": "an aiohttp on_startup handler, which runs before the snapshot",
    "cleanup_ctx": "an aiohttp cleanup context, whose part before the yield runs before the snapshot",
}


class Project:
    """All scanned modules, with calls resolved across them."""

    def __init__(self, modules: Sequence[ModuleInfo]) -> None:
        self.modules = list(modules)
        self.by_name = {module.name: module for module in modules}

    # -- resolution ----------------------------------------------------------

    def lookup(self, qualified: str, depth: int = 0) -> Target | None:
        """Find the function or class that a qualified name refers to, following re-exports."""
        if depth > MAX_RESOLUTION_DEPTH:
            return None
        parts = qualified.split(".")
        for split in range(len(parts) - 1, 0, -1):
            module = self.by_name.get(".".join(parts[:split]))
            if module is not None:
                return self._lookup_in_module(module, parts[split:], depth)
        return None

    def _lookup_in_module(self, module: ModuleInfo, attributes: list[str], depth: int) -> Target | None:
        head, rest = attributes[0], attributes[1:]
        target: Target | None = module.functions.get(head) or module.classes.get(head)
        if target is None and head in module.imports:
            return self.lookup(".".join([module.imports[head], *rest]), depth + 1)
        if target is None or not rest:
            return target
        if isinstance(target, ClassInfo) and len(rest) == 1:
            return self.find_method(target, rest[0])
        return None

    def find_method(self, class_info: ClassInfo, name: str, depth: int = 0) -> FunctionInfo | None:
        """Find a method on a class or on its project base classes."""
        method = class_info.methods.get(name)
        if method is not None or depth > MAX_RESOLUTION_DEPTH:
            return method
        for base in class_info.node.bases:
            base_target = self.resolve_reference(class_info.module, base, None)
            if isinstance(base_target, ClassInfo):
                found = self.find_method(base_target, name, depth + 1)
                if found is not None:
                    return found
        return None

    def resolve_reference(self, module: ModuleInfo, expression: ast.expr, scope: FunctionInfo | None) -> Target | None:
        """Resolve a name or attribute to a function or class of the project, as seen from ``scope``."""
        # NOTE: calls through variables, getattr() or super() resolve to nothing, so code that only they reach
        # before the snapshot is not reported.
        if isinstance(expression, ast.Lambda):
            return next((info for info in module.all_functions if info.node is expression), None)
        if isinstance(expression, ast.Call) and dotted_name(expression.func) in {"functools.partial", "partial"}:
            return self.resolve_reference(module, expression.args[0], scope) if expression.args else None
        if isinstance(expression, ast.Name):
            function = scope
            while function is not None:
                if expression.id in function.nested:
                    return function.nested[expression.id]
                function = function.parent
            local = module.functions.get(expression.id) or module.classes.get(expression.id)
            if local is not None:
                return local
        elif isinstance(expression, ast.Attribute) and isinstance(expression.value, ast.Name):
            owner_name = expression.value.id
            if owner_name in {"self", "cls"} and scope is not None and scope.class_info is not None:
                return self.find_method(scope.class_info, expression.attr)
            if owner_name in module.classes:
                return self.find_method(module.classes[owner_name], expression.attr)
            if owner_name in module.instance_names:
                instance_class = self.resolve_reference(module, module.instance_names[owner_name], None)
                if isinstance(instance_class, ClassInfo):
                    return self.find_method(instance_class, expression.attr)
        qualified = module.qualify(expression)
        return self.lookup(qualified) if qualified else None

    def is_lifecycle_api(self, module: ModuleInfo, expression: ast.expr) -> bool:
        """Tell whether an expression names per_vm, on_run or another function of the lifecycle package."""
        if isinstance(expression, ast.Call):
            expression = expression.func
        qualified = module.qualify(expression)
        if qualified is None:
            return False
        parts = qualified.lstrip(".").split(".")
        return parts[-1] in LIFECYCLE_FUNCTIONS and "microvm" in parts[:-1]

    # -- marking -------------------------------------------------------------

    def analyse(self) -> None:
        """Mark memoised functions, lifecycle callbacks, callers and the code that runs before the snapshot."""
        for module in self.modules:
            self._mark_decorated_functions(module)
            self._mark_lifecycle_arguments(module)
        self._record_callers()
        self._mark_build_phase()

    def _mark_decorated_functions(self, module: ModuleInfo) -> None:
        for info in module.all_functions:
            if isinstance(info.node, ast.Lambda):
                continue
            for decorator in info.node.decorator_list:
                qualified = module.qualify(decorator.func if isinstance(decorator, ast.Call) else decorator)
                if qualified in MEMOISING_DECORATORS:
                    info.memoised = True
                if self.is_lifecycle_api(module, decorator):
                    info.lifecycle_callback = True

    def _mark_lifecycle_arguments(self, module: ModuleInfo) -> None:
        """Mark functions and lambdas passed to per_vm(...), on_run(...) and the other lifecycle functions."""
        for site in module.calls:
            if not self.is_lifecycle_api(module, site.node.func):
                continue
            scope = site.owner if isinstance(site.owner, FunctionInfo) else None
            for argument in [*site.node.args, *(keyword.value for keyword in site.node.keywords)]:
                target = self.resolve_reference(module, argument, scope)
                if isinstance(target, FunctionInfo):
                    target.lifecycle_callback = True

    def _record_callers(self) -> None:
        for module in self.modules:
            for site in module.calls:
                scope = site.owner if isinstance(site.owner, FunctionInfo) else None
                target = self.resolve_reference(module, site.node.func, scope)
                if isinstance(target, FunctionInfo):
                    target.callers.append((site.owner, site.node.lineno))

    def _mark_build_phase(self) -> None:
        """Find every function and class that runs before the snapshot, starting from the import of each module."""
        queue: list[Target] = []

        def mark(target: Target, reason: str) -> None:
            if target.build_reason is None:
                target.build_reason = reason
                queue.append(target)

        for module in self.modules:
            for target, reason in self._framework_roots(module):
                mark(target, reason)
            for site in module.module_calls:
                for target in self._call_targets(module, site, None):
                    mark(target, _call_reason(target, None, f"{module.display}:{site.node.lineno}"))
            # A decorator applied at import is called then, with the decorated function.
            for decorator, owner, line in module.decorator_uses:
                if isinstance(owner, FunctionInfo) or self.is_lifecycle_api(module, decorator):
                    continue
                decorator_target = self.resolve_reference(module, decorator, None)
                if isinstance(decorator_target, FunctionInfo):
                    mark(decorator_target, f"which is applied as a decorator at import ({module.display}:{line})")

        while queue:
            target = queue.pop(0)
            if isinstance(target, ClassInfo):
                for callee, reason in self._instantiation_targets(target):
                    mark(callee, reason)
                continue
            for site in target.calls:
                for callee in self._call_targets(target.module, site, target):
                    mark(callee, _call_reason(callee, target, f"{target.module.display}:{site.node.lineno}"))

    def _call_targets(self, module: ModuleInfo, site: CallSite, scope: FunctionInfo | None) -> list[Target]:
        """Return the project function or class that a call runs at once. A lifecycle API call runs nothing yet."""
        if self.is_lifecycle_api(module, site.node.func):
            return []
        target = self.resolve_reference(module, site.node.func, scope)
        return [] if target is None else [target]

    def _instantiation_targets(self, class_info: ClassInfo) -> Iterator[tuple[Target, str]]:
        """Yield the code that instantiating a class runs: __new__, __init__, __post_init__ and field factories."""
        reason = f"which runs when {class_info.name} is instantiated {class_info.build_reason}"
        for method_name in ("__new__", "__init__", "__post_init__"):
            method = self.find_method(class_info, method_name)
            if method is not None:
                yield method, reason
        for factory in class_info.factories:
            target = self.resolve_reference(class_info.module, factory, None)
            if target is not None:
                yield target, f"a default_factory of {class_info.name}, {reason.removeprefix('which ')}"

    def _framework_roots(self, module: ModuleInfo) -> Iterator[tuple[Target, str]]:
        """Yield the functions that web frameworks call while the app starts, before the snapshot."""
        for name in APP_FACTORY_NAMES:
            if name in module.functions:
                yield module.functions[name], "an app factory, which the server calls before the snapshot"

        for info in module.all_functions:
            if isinstance(info.node, ast.Lambda):
                continue
            if info.name == "lifespan" and any(
                module.qualify(decorator) in CONTEXT_MANAGER_DECORATORS for decorator in info.node.decorator_list
            ):
                yield info, "a lifespan function, whose startup part runs before the snapshot"
            for decorator in info.node.decorator_list:
                if _is_startup_decorator(decorator):
                    yield info, "a startup handler, which runs before the snapshot"
            if info.name == "ready" and info.class_info is not None and self._is_app_config(info.class_info):
                yield info, "Django's AppConfig.ready, which runs before the snapshot"

        for site in module.calls:
            scope = site.owner if isinstance(site.owner, FunctionInfo) else None
            call = site.node
            for keyword in call.keywords:
                if keyword.arg == "lifespan":
                    # Starlette and FastAPI take one lifespan function; Litestar takes a list of them.
                    value = keyword.value
                    lifespans = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
                    for lifespan in lifespans:
                        target = self.resolve_reference(module, lifespan, scope)
                        if target is not None:
                            yield target, "the lifespan function, whose startup part runs before the snapshot"
                elif keyword.arg == "on_startup" and isinstance(keyword.value, (ast.List, ast.Tuple)):
                    for element in keyword.value.elts:
                        target = self.resolve_reference(module, element, scope)
                        if target is not None:
                            yield target, "a startup handler, which runs before the snapshot"
            if (
                isinstance(call.func, ast.Attribute)
                and call.func.attr == "add_event_handler"
                and len(call.args) >= 2
                and _is_string(call.args[0], "startup")
            ):
                target = self.resolve_reference(module, call.args[1], scope)
                if target is not None:
                    yield target, "a startup handler, which runs before the snapshot"
            # aiohttp: app.on_startup.append(handler) and app.cleanup_ctx.append(context), whose part
            # before the yield runs at startup.
            if (
                isinstance(call.func, ast.Attribute)
                and call.func.attr in ("append", "extend", "insert")
                and isinstance(call.func.value, ast.Attribute)
                and call.func.value.attr in AIOHTTP_STARTUP_SIGNALS
                and call.args
            ):
                added = call.args[-1]
                handlers = [added]
                if call.func.attr == "extend" and isinstance(added, (ast.List, ast.Tuple)):
                    handlers = added.elts
                for handler in handlers:
                    target = self.resolve_reference(module, handler, scope)
                    if target is not None:
                        yield target, AIOHTTP_STARTUP_SIGNALS[call.func.value.attr]

    def _is_app_config(self, class_info: ClassInfo, depth: int = 0) -> bool:
        """Tell whether a class derives from Django's AppConfig, directly or through project classes."""
        for base in class_info.node.bases:
            qualified = class_info.module.qualify(base) or ""
            if qualified == "django.apps.AppConfig" or qualified.endswith(".AppConfig"):
                return True
            base_target = self.resolve_reference(class_info.module, base, None)
            if (
                isinstance(base_target, ClassInfo)
                and depth < MAX_RESOLUTION_DEPTH
                and self._is_app_config(base_target, depth + 1)
            ):
                return True
        return False

    # -- findings ------------------------------------------------------------

    def findings(self) -> Iterator[tuple[ModuleInfo, Finding, ast.stmt | None, ast.expr]]:
        """Yield every finding with its module, enclosing statement and node, before suppressions."""
        for module in self.modules:
            for site in module.calls:
                finding = self._finding_for_call(module, site)
                if finding is not None:
                    yield module, finding, site.statement, site.node
            yield from self._factory_reference_findings(module)

    def _finding_for_call(self, module: ModuleInfo, site: CallSite) -> Finding | None:
        qualified = module.qualify(site.node.func)
        rule_id = rule_for(qualified)
        if rule_id is None or qualified is None or self._inside_flagged_call(module, site):
            return None
        call_text = _describe_call(qualified, site.node)
        owner = site.owner

        if isinstance(owner, FunctionInfo) and owner.memoised and not self._runs_only_after_run(owner):
            message = (
                f"{call_text} is called in {owner.display}, whose result functools caches for the life of the process"
            )
            if owner.build_reason:
                reason = owner.build_reason
                reason = reason.removeprefix("which ") if reason.startswith("which ") else f"is {reason}"
                message += f", and {owner.display} {reason}"
            return self._finding("MVM007", module, site.node, message + ".")

        where = _place_before_snapshot(site.detail, owner)
        if where is not None:
            return self._finding(rule_id, module, site.node, f"{call_text} is called {where}.")

        if isinstance(owner, FunctionInfo) and not self._runs_only_after_run(owner):
            stored_in = self._process_state_target(owner, site)
            if stored_in is not None:
                message = (
                    f"{call_text} is stored in {stored_in} by {owner.display}, so the value from the first call "
                    "stays for the life of the process"
                )
                return self._finding("MVM007", module, site.node, message + ".")
        return None

    @staticmethod
    def _inside_flagged_call(module: ModuleInfo, site: CallSite) -> bool:
        """Tell whether the call is an argument of another reported call, such as time.time() in random.seed()."""
        return any(rule_for(module.qualify(outer.func)) is not None for outer in site.enclosing_calls)

    def _runs_only_after_run(self, info: FunctionInfo, seen: frozenset[int] = frozenset()) -> bool:
        """Tell whether a function is a lifecycle callback or is called only from lifecycle callbacks."""
        if info.lifecycle_callback:
            return True
        if id(info) in seen or not info.callers or info.build_reason is not None:
            return False
        return all(
            isinstance(caller, FunctionInfo) and self._runs_only_after_run(caller, seen | {id(info)})
            for caller, _line in info.callers
        )

    def _process_state_target(self, owner: FunctionInfo, site: CallSite) -> str | None:
        """Return the module global or module-level object that caches the call's value, if any.

        A store counts as a cache when a test of the same name guards it, as in
        ``if _TOKEN is None: _TOKEN = ...``. A store made on every call is left alone.
        """
        statement = site.statement
        if not isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)) or statement.value is None:
            return None
        if not any(node is site.node for node in ast.walk(statement.value)):
            return None
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        local_names = owner.local_names()
        guard_names = _guard_names(owner, statement)
        for target in targets:
            if isinstance(target, ast.Name) and target.id in owner.global_names and target.id in guard_names:
                return f"the module global {target.id}"
            root = target
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if (
                root is not target
                and isinstance(root, ast.Name)
                and root.id in owner.module.assigned_names
                and root.id not in local_names
                and root.id in guard_names
            ):
                return f"{ast.unparse(target)}, on the module-level object {root.id}"
        return None

    def _factory_reference_findings(self, module: ModuleInfo) -> Iterator[tuple[ModuleInfo, Finding, None, ast.expr]]:
        """Report default_factory=uuid.uuid4 and similar on classes that are instantiated before the snapshot."""
        for class_info in module.all_classes:
            if class_info.build_reason is None:
                continue
            for factory in class_info.factories:
                qualified = module.qualify(factory)
                rule_id = rule_for(qualified)
                if rule_id is None or qualified is None:
                    continue
                message = (
                    f"{qualified} is the default_factory of a field of {class_info.name}, so it is called when "
                    f"{class_info.name} is instantiated {class_info.build_reason}."
                )
                yield module, self._finding(rule_id, module, factory, message), None, factory

    @staticmethod
    def _finding(rule_id: str, module: ModuleInfo, node: ast.expr, message: str) -> Finding:
        return Finding(rule_id, module.display, node.lineno, module.column(node), message)


def _call_reason(target: Target, caller: FunctionInfo | None, location: str) -> str:
    """Explain why a called function or class runs before the snapshot, as a phrase that follows its name."""
    if isinstance(target, ClassInfo):
        return f"at import ({location})" if caller is None else f"in {caller.display} ({location}) before the snapshot"
    if caller is None:
        return f"which is called at import ({location})"
    return f"which is called from {caller.display} ({location}) before the snapshot"


def _guard_names(owner: FunctionInfo, statement: ast.stmt) -> set[str]:
    """Return the names read by the tests of the if statements in ``owner`` that contain ``statement``."""
    body = [owner.node.body] if isinstance(owner.node, ast.Lambda) else owner.node.body
    names: set[str] = set()
    for node in walk_own_scope(body):
        if isinstance(node, ast.If) and any(inner is statement for inner in ast.walk(node)):
            names.update(name.id for name in ast.walk(node.test) if isinstance(name, ast.Name))
    return names


def _is_startup_decorator(decorator: ast.expr) -> bool:
    if isinstance(decorator, ast.Attribute):
        return decorator.attr in STARTUP_DECORATOR_ATTRIBUTES
    if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute):
        if decorator.func.attr in STARTUP_DECORATOR_ATTRIBUTES:
            return True
        return decorator.func.attr == "on_event" and bool(decorator.args) and _is_string(decorator.args[0], "startup")
    return False


def _is_string(node: ast.expr, value: str) -> bool:
    return isinstance(node, ast.Constant) and node.value == value


def _describe_call(qualified: str, call: ast.Call) -> str:
    """Return the call as written, shortened, with the qualified name when an alias hides it."""
    text = ast.unparse(call)
    if len(text) > MAX_CALL_TEXT:
        text = f"{ast.unparse(call.func)}(...)"
    if ast.unparse(call.func) == qualified:
        return text
    return f"{text} ({qualified})"


def _place_before_snapshot(detail: str | None, owner: Owner) -> str | None:
    """Return where a call runs before the snapshot, as a phrase, or None when it runs only later."""
    if isinstance(owner, FunctionInfo):
        if owner.build_reason is None:
            return None
        place = f"in {owner.display}, {owner.build_reason}"
    else:
        place = "at import"
    return f"{detail} {place}" if detail else place
