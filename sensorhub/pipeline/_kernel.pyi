# Type stub of the C kernel (sensorhub/pipeline/_kernel.c); the arguments are documented there.
from typing import Any

KERNEL_VERSION: int

def front(
    t: Any,
    acc: Any,
    gyro: Any,
    seq: Any,
    last_seq: int | None,
    last_t: float,
    last_motion: float,
    recent: list[float],
    params: Any,
    zi: Any,
    acc_out: Any,
    gyro_out: Any,
    rest_out: Any,
    /,
) -> tuple[Any, ...] | None: ...
def back(
    orientation: Any,
    basis: Any,
    acc: Any,
    gyro: Any,
    mparams: Any,
    count: int,
    y: float,
    incl_out: Any,
    move_out: Any,
    /,
) -> tuple[int, float | None] | None: ...
