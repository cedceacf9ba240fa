"""The campaign sets of the benchmark, written as YAML files in a folder of their own.

- ``abandoned-cart``: the campaign every system runs: enter on ``Product Added`` (a new add
  restarts the journey: the debounce), exit on ``Order Completed``, wait 1h, email, wait 1d,
  then a call when the cart is worth 200 or more, else an ad audience.
- ``idle``: the same campaign plus N-1 campaigns triggered by event names that no event of the
  stream has, so they never listen: what campaigns that do not apply cost.
- ``listening``: N copies of the abandoned cart with distinct ids, all listening.
- ``one-rule``: the abandoned cart cut to its first rule: enter on ``Product Added`` (restart),
  exit on ``Order Completed``, wait 1h, email. Nothing after: the journey ends at the email.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ABANDONED_CART_ID = "bench-abandoned-cart"
CART_THRESHOLD = 200.0

_ABANDONED_CART = """\
campaign: {id}
name: Abandoned cart (benchmark)
status: active
trigger:
  event: Product Added
entry:
  while_active: restart
exit:
  - event: Order Completed
steps:
  - wait: 1h
  - send: email
    template: abandoned_cart.html
    subject: "Your cart is waiting"
  - wait: 1d
  - if: customer.cart.value >= {threshold:g}
    then:
      - send: call
        list: high-value-carts
        priority: high
    else:
      - send: ads
        audience: cart-abandoners
"""

_IDLE = """\
campaign: {id}
name: Never triggered {number} (benchmark)
status: active
trigger:
  event: Benchmark Never Sent {number}
exit:
  - event: Order Completed
steps:
  - wait: 1h
  - send: email
    template: abandoned_cart.html
    subject: "Never sent"
"""

KINDS = ("idle", "listening", "one-rule")


def abandoned_cart_yaml(campaign_id: str = ABANDONED_CART_ID) -> str:
    """The abandoned-cart campaign as a marketer would write it."""
    return _ABANDONED_CART.format(id=campaign_id, threshold=CART_THRESHOLD)


def idle_yaml(number: int) -> str:
    """A campaign triggered by an event name that the stream never has."""
    return _IDLE.format(id=f"bench-never-{number:03d}", number=number)


def write_campaigns(folder: Path, kind: str, count: int) -> Path:
    """``count`` campaigns of ``kind`` (see the module docstring) in a fresh ``folder``."""
    if kind not in KINDS:
        raise ValueError(f"unknown campaign set {kind!r}; expected one of {KINDS}")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if kind == "one-rule":  # the same campaign up to its email
        one_rule = abandoned_cart_yaml().split("  - wait: 1d\n")[0]
        (folder / "000-abandoned-cart.yaml").write_text(one_rule)
        return folder
    (folder / "000-abandoned-cart.yaml").write_text(abandoned_cart_yaml())
    for number in range(1, count):
        if kind == "idle":
            text = idle_yaml(number)
        else:
            text = abandoned_cart_yaml(f"{ABANDONED_CART_ID}-{number:03d}")
        (folder / f"{number:03d}-{kind}.yaml").write_text(text)
    return folder
