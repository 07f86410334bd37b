import torch

from common import TensorBatches, channel_stats, random_crop_flip


def test_every_sample_once_per_epoch():
    X = torch.arange(103, dtype=torch.float32).reshape(103, 1)
    batches = TensorBatches(X, torch.arange(103), batch_size=10, seed=0)
    assert len(batches) == 11
    for _ in range(3):
        seen = torch.cat([xb.flatten() for xb, _ in batches])
        assert sorted(seen.long().tolist()) == list(range(103))
    epoch_a = torch.cat([yb for _, yb in batches])
    epoch_b = torch.cat([yb for _, yb in batches])
    assert not torch.equal(epoch_a, epoch_b)  # reshuffled each epoch


def test_drop_last_and_pairs_stay_aligned():
    X = torch.arange(25, dtype=torch.float32).reshape(25, 1)
    batches = TensorBatches(X, torch.arange(25) * 2, batch_size=10, drop_last=True)
    assert len(batches) == 2
    for xb, yb in batches:
        assert len(xb) == 10 and torch.equal(xb.flatten().long() * 2, yb)


def test_state_dict_restores_order():
    X, y = torch.randn(50, 3), torch.arange(50)
    a = TensorBatches(X, y, 7, seed=5)
    list(a)
    state = a.state_dict()
    expected = [yb for _, yb in a]
    b = TensorBatches(X, y, 7, seed=99)
    b.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(expected, [yb for _, yb in b]))


def test_normalize_and_stats():
    X = torch.rand(200, 3, 4, 4) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    mean, std = channel_stats(X)
    batches = TensorBatches(X, torch.zeros(200), 200, shuffle=False, normalize=(mean, std))
    xb, _ = next(iter(batches))
    m, s = channel_stats(xb)
    assert torch.allclose(m, torch.zeros(3), atol=1e-5) and torch.allclose(s, torch.ones(3), atol=1e-4)


def test_random_crop_flip_is_a_shifted_copy():
    X = torch.rand(16, 3, 8, 8)
    out = random_crop_flip(padding=2)(X, torch.Generator().manual_seed(0))
    assert out.shape == X.shape
    # each output is a crop of the zero-padded (possibly flipped) input: find it by brute force
    padded = torch.nn.functional.pad(X, (2, 2, 2, 2))
    for i in range(16):
        found = any(torch.equal(out[i], cand[:, dy:dy + 8, dx:dx + 8])
                    for cand in (padded[i], padded[i].flip(-1)) for dy in range(5) for dx in range(5))
        assert found


def test_uint8_images_are_scaled_per_batch_like_float_ones():
    g = torch.Generator().manual_seed(0)
    X8 = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=g)
    Xf = X8.float() / 255
    stats8, statsf = channel_stats(X8), channel_stats(Xf)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(stats8, statsf))
    assert stats8[0].dtype == torch.float32
    flip = random_crop_flip(padding=2)
    a = TensorBatches(X8, torch.arange(64), 16, seed=3, transform=flip, normalize=stats8)
    b = TensorBatches(Xf, torch.arange(64), 16, seed=3, transform=flip, normalize=statsf)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == torch.float32 and torch.equal(ya, yb)
        assert torch.allclose(xa, xb, atol=1e-5)
