"""Block fields derived from the core settings models, and the mapping between the two.

Each configuration block describes one core model (``VaultSettings``,
``CodexServerConfig``, ``CloudEndpoint``). Its fields are not written a second time: a
:class:`FieldLayout` names which of the model's fields the block holds and under which
names, and builds the block's fields from the model's own (annotation, default,
constraints, title, description), so the two cannot drift apart. The same layout maps
a block's flat values to the nested config (:meth:`FieldLayout.to_model`) and back
(:meth:`FieldLayout.from_model`); a layout is one line per rule, not one per field.

Why this shape, and not another:

- Inheriting the core model in the block would give the same fields, but it cannot
  flatten a nested model (``CodexServerConfig.provider`` becomes the block's
  ``provider_*`` fields: Prefect's form edits flat fields) and it would carry the core
  model's configuration (frozen, extra fields forbidden) into a Prefect block.
- Writing each field's name and type in the block and deriving only its ``Field``
  would still copy every type by hand.

So the fields come from the model, and only the layout is written by hand: the block's
field names ARE the stored schema of every saved block document, so the layout (not a
rename in a core model) decides them, and a test pins them. A field the core model
gains reaches the block by itself (the Codex settings' next backend option, say);
fields the core model keeps in memory only (the Vault token) are excluded by name.

Field validators of the core model (URL checks, the path template) are not copied; the
block's model validator builds the core model from the block, which runs all of them,
so a bad field or combination is refused when the block is built, with one message in
the block's own field names and never a value.

The cost: the fields exist only at run time, so a type checker sees them as ``Any``
(blocks are used through their methods: ``get_settings()``, ``get_config()`` ...).
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

from prefect.blocks.core import Block
from pydantic import BaseModel, ValidationError, create_model, model_validator
from pydantic.fields import FieldInfo

M = TypeVar("M", bound=BaseModel)
Path = tuple[str, ...]


@dataclass(frozen=True)
class FieldLayout(Generic[M]):
    """Which fields of ``model`` a block holds: block field name -> path in the model.

    Build one with :meth:`of`; ``paths`` keeps the model's field order (Prefect's form
    shows the fields in that order).
    """

    model: type[M]
    paths: Mapping[str, Path]

    @classmethod
    def of(
        cls,
        model: type[M],
        *,
        exclude: Collection[str] = (),
        flatten: Mapping[str, str] | None = None,
        unprefixed: Collection[str] = (),
    ) -> FieldLayout[M]:
        """Every field of ``model`` but ``exclude``, nested models flattened.

        Args:
            model: The core model the block describes.
            exclude: Fields the block does not hold.
            flatten: A field holding a nested model -> the prefix its fields get in the
                block (``{"provider": "provider_"}``: ``provider.base_url`` is the block's
                ``provider_base_url``).
            unprefixed: Fields of flattened models that keep their own name (block
                fields released before the prefix rule).
        """
        flatten = flatten or {}
        paths: dict[str, Path] = {}
        for name, info in model.model_fields.items():
            if name in exclude:
                continue
            if name not in flatten:
                paths[name] = (name,)
                continue
            for sub in _nested_model(model, name, info).model_fields:
                block_name = sub if sub in unprefixed else flatten[name] + sub
                paths[block_name] = (name, sub)
        return cls(model, paths)

    def block_base(self, name: str) -> type[DerivedBlock]:
        """A Block subclass holding these fields; block types subclass it.

        It is bound to no module-level name, so ``prefect block register`` finds only
        the block types themselves.
        """
        fields: dict[str, Any] = {
            block_name: (info.annotation, info) for block_name, info in self.field_infos().items()
        }
        base = create_model(name, __base__=DerivedBlock, **fields)
        base._layout = self
        return base

    def field_infos(self) -> dict[str, FieldInfo]:
        """The model's own field (annotation, default, constraints, title, description)
        for each block field."""
        return {name: self._field_info(path) for name, path in self.paths.items()}

    def to_model(self, block: BaseModel) -> M:
        """The core model the block's values describe.

        Raises:
            ValueError: the values do not make a valid model; the message names the
                block's fields and never shows a value.
        """
        data: dict[str, Any] = {}
        for name, path in self.paths.items():
            target = data
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = getattr(block, name)
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            raise ValueError(self.describe(exc)) from None

    def from_model(self, config: M) -> dict[str, Any]:
        """The block's field values that describe ``config``."""
        values: dict[str, Any] = {}
        for name, path in self.paths.items():
            value: Any = config
            for part in path:
                value = getattr(value, part)
            values[name] = value
        return values

    def describe(self, exc: ValidationError) -> str:
        """Each error as ``<block field>: message``; never the input value."""
        parts = []
        for error in exc.errors():
            where = self._block_name(tuple(str(p) for p in error["loc"]))
            message = error["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {message}" if where else message)
        return "; ".join(parts)

    def _block_name(self, loc: Path) -> str:
        for name, path in self.paths.items():
            if loc[: len(path)] == path:
                return ".".join((name, *loc[len(path) :]))
        return ".".join(loc)

    def _field_info(self, path: Path) -> FieldInfo:
        model: type[BaseModel] = self.model
        for part in path[:-1]:
            model = _nested_model(model, part, model.model_fields[part])
        return model.model_fields[path[-1]]


class DerivedBlock(Block, ABC):
    """A block whose fields a :class:`FieldLayout` derived: built, it builds its core model.

    Abstract, so Prefect never registers it as a block type of its own.
    """

    _layout: ClassVar[FieldLayout[Any]]

    @model_validator(mode="after")
    def _check_core_model(self) -> Self:
        """Refuse bad fields and combinations now, not when the block is first used."""
        try:
            self._layout.to_model(self)
        except ValueError as exc:
            raise ValueError(f"invalid {self.get_block_type_name()} block: {exc}") from None
        return self


def _nested_model(model: type[BaseModel], name: str, info: FieldInfo) -> type[BaseModel]:
    nested = info.annotation
    if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
        raise TypeError(f"{model.__name__}.{name} is not a model and cannot be flattened")
    return nested
