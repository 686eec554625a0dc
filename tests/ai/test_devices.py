import pytest
import torch

from medviewer.ai import devices


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    assert devices.resolve_device("auto") == (torch.device("cpu"), [])
    monkeypatch.setattr(devices, "mps_available", lambda: True)
    assert devices.available_devices() == ["mps", "cpu"]
    assert devices.resolve_device("auto")[0] == torch.device("mps")
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    assert devices.resolve_device("auto")[0] == torch.device("cuda")
    assert devices.resolve_device("cpu") == (torch.device("cpu"), [])  # the user's override wins


def test_missing_accelerator_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    device, warnings = devices.resolve_device("cuda:1")
    assert device == torch.device("cpu") and "CUDA was requested" in warnings[0]
    device, warnings = devices.resolve_device("mps")
    assert device == torch.device("cpu") and "MPS" in warnings[0]
    with pytest.raises(ValueError, match="device must be one of"):
        devices.resolve_device("tpu")


def test_out_of_memory_recognised():
    assert devices.is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert devices.is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"))
    assert devices.is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not devices.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not devices.is_out_of_memory(ValueError("out of memory"))


def test_cpu_threads_context():
    before = torch.get_num_threads()
    with devices.cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert devices.interactive_thread_count() >= 1
