import torch

from medviewer.ai.architectures import build_architecture


def test_in_plane_denoiser_reaches_one_slice_each_way():
    torch.manual_seed(0)
    network = build_architecture("medviewer.DenoiseCNN", {"features": 4, "depth": 4, "in_plane": True}).eval()
    image = torch.rand(1, 1, 9, 20, 20)
    changed = image.clone()
    changed[0, 0, 4] += 1.0
    with torch.inference_mode():
        difference = (network(changed) - network(image)).abs().amax(dim=(0, 1, 3, 4))
    assert torch.all(difference[3:6] > 0) and torch.all(difference[:3] == 0) and torch.all(difference[6:] == 0)


def test_untrained_denoiser_output_has_the_input_shape():
    for arguments in ({"spatial_dims": 3}, {"spatial_dims": 2}, {"spatial_dims": 3, "in_plane": True}):
        network = build_architecture("medviewer.DenoiseCNN", {"features": 4, "depth": 3, **arguments}).eval()
        shape = (2, 1, 5, 12, 12) if arguments["spatial_dims"] == 3 else (2, 1, 12, 12)
        with torch.inference_mode():
            assert network(torch.rand(shape)).shape == shape
