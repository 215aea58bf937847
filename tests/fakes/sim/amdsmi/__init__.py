"""A simulated ``amdsmi`` (ROCm's Python bindings), put first on ``sys.path`` by the test fixture.

Same names, signatures, return dicts and exception classes as the real package (amdsmi 7.0:
``amdsmi_interface.py``, ``amdsmi_exception.py``); every call is answered by the
:class:`fakes.amd.FakeAmdSmi` installed in :data:`_SIM`, so a test has an exact ground truth.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_FAIL_LOAD_MODULE = 4
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_FILE_ERROR = 14
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34

_INFO = {
    AMDSMI_STATUS_INVAL: "AMDSMI_STATUS_INVAL - Invalid parameters",
    AMDSMI_STATUS_NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    AMDSMI_STATUS_FAIL_LOAD_MODULE: "AMDSMI_STATUS_FAIL_LOAD_MODULE - Fail to load lib",
    AMDSMI_STATUS_NO_PERM: "AMDSMI_STATUS_NO_PERM - Permission Denied",
    AMDSMI_STATUS_FILE_ERROR: "AMDSMI_STATUS_FILE_ERROR - Error opening file",
    AMDSMI_STATUS_INIT_ERROR: "AMDSMI_STATUS_INIT_ERROR - Initialization error",
    AMDSMI_STATUS_NOT_FOUND: "AMDSMI_STATUS_NOT_FOUND - Device Not found",
    AMDSMI_STATUS_NOT_INIT: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    AMDSMI_STATUS_DRIVER_NOT_LOADED: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
}

_SIM: Any = None  # set by fakes.amd.FakeAmdSmi.install


class AmdSmiException(Exception):
    """Base smi exception class"""


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = _INFO.get(
            err_code, "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred"
        )

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_code(self) -> int:
        return self.err_code

    def get_error_info(self, detailed: bool = True) -> str:
        return self.err_info if detailed else self.err_info.split(" - ")[0]


class AmdSmiParameterException(AmdSmiException):
    pass


class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1 << 0
    INIT_AMD_GPUS = 1 << 1


def _sim() -> Any:
    if _SIM is None:
        raise AmdSmiLibraryException(AMDSMI_STATUS_FAIL_LOAD_MODULE)
    return _SIM


def amdsmi_init(flag: AmdSmiInitFlags = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
    if not isinstance(flag, AmdSmiInitFlags):
        raise AmdSmiParameterException(flag)
    _sim().call("amdsmi_init", flag)


def amdsmi_shut_down() -> None:
    _sim().call("amdsmi_shut_down")


def amdsmi_get_processor_handles() -> list[Any]:
    return _sim().call("amdsmi_get_processor_handles")


def amdsmi_get_gpu_device_uuid(processor_handle: Any) -> str:
    return _sim().call("amdsmi_get_gpu_device_uuid", processor_handle)


def amdsmi_get_gpu_device_bdf(processor_handle: Any) -> str:
    return _sim().call("amdsmi_get_gpu_device_bdf", processor_handle)


def amdsmi_get_gpu_enumeration_info(processor_handle: Any) -> dict[str, Any]:
    return _sim().call("amdsmi_get_gpu_enumeration_info", processor_handle)


def amdsmi_get_gpu_asic_info(processor_handle: Any) -> dict[str, Any]:
    return _sim().call("amdsmi_get_gpu_asic_info", processor_handle)


def amdsmi_get_gpu_board_info(processor_handle: Any) -> dict[str, Any]:
    return _sim().call("amdsmi_get_gpu_board_info", processor_handle)


def amdsmi_get_energy_count(processor_handle: Any) -> dict[str, Any]:
    return _sim().call("amdsmi_get_energy_count", processor_handle)


def amdsmi_get_power_info(processor_handle: Any) -> dict[str, Any]:
    return _sim().call("amdsmi_get_power_info", processor_handle)
