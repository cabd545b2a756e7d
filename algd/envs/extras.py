"""Optional simulator dependencies: what each extra provides and how to install it.

The core package runs without any simulator. The benchmark families need one of two extras:

* ``mujoco``: Gymnasium's MuJoCo locomotion (the velocity-constrained tasks);
* ``safety``: Safety-Gymnasium's navigation tasks (includes ``mujoco``). Safety-Gymnasium 1.0.0
  pins versions that cannot be installed on Python 3.11 (``pygame==2.1.0``, ``mujoco==2.3.3``,
  ``gymnasium==0.28.1``), so it is installed in a second step without its pins; ``algd[safety]``
  brings the dependencies it really uses.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from typing import Iterator

from algd.config import ConfigError

#: the shell commands that install each extra into the current environment
INSTALL_COMMANDS: dict[str, str] = {
    "mujoco": "pip install 'algd[mujoco]'",
    "safety": "pip install 'algd[safety]' && pip install --no-deps safety-gymnasium==1.0.0",
    "video": "pip install 'algd[video]'",
}
#: how the same extras are installed from a clone of the repository
_FROM_CLONE = "in a clone of algd, write -e '.[EXTRA]' for 'algd[EXTRA]'"

#: the module whose presence shows that an extra is installed
_PROBE: dict[str, str] = {"mujoco": "mujoco", "safety": "safety_gymnasium", "video": "imageio"}


class MissingExtraError(ConfigError):
    """A task or command needs an optional dependency that is not installed."""


def extra_available(extra: str) -> bool:
    """Whether the simulator of ``extra`` can be imported here (without importing it)."""
    needed = [_PROBE[extra]] + (["mujoco"] if extra == "safety" else [])
    return all(importlib.util.find_spec(m) is not None for m in needed)


def require_extra(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` naming the install command when ``extra`` is missing."""
    if not extra_available(extra):
        raise MissingExtraError(
            f"{what} needs the optional '{extra}' dependencies; install them with: "
            f"{INSTALL_COMMANDS[extra]} ({_FROM_CLONE.replace('EXTRA', extra)})"
        )


#: a notice gymnasium-robotics (a dependency of Safety-Gymnasium, loaded by ``import gymnasium``
#: as a plugin) prints on every import about environments algd does not use
_PLUGIN_NOTICE = "AdroitHand"


@contextlib.contextmanager
def quiet_plugin_notices() -> Iterator[None]:
    """Drop the gymnasium-robotics import notice from stderr; pass everything else on."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:
        kept = [line for line in captured.getvalue().splitlines()
                if line.strip() and _PLUGIN_NOTICE not in line]
        if kept:
            print("\n".join(kept), file=sys.stderr)
