"""utils.augment: our batched affine against torchvision, and the randomness it draws within the recipe's ranges."""
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from utils import augment, data


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.test_images[:16].float().unsqueeze(1) / 255.0


def ours(images, angle, translate, scale, fill=0.0):
    n = images.shape[0]
    theta = augment.affine_theta(torch.full((n,), float(angle)), torch.tensor([translate] * n, dtype=torch.float),
                                 torch.full((n,), float(scale)), 28)
    return augment.apply_affine(images, theta, fill=fill)


def test_identity_parameters_give_the_identity(digits):
    assert torch.allclose(ours(digits, 0, (0, 0), 1.0), digits, atol=1e-5)


@pytest.mark.parametrize("angle, translate, scale",
                         [(5, (0, 0), 1.0), (-5, (0, 0), 1.0), (0, (1, -1), 1.0), (0, (0, 0), 1.05),
                          (0, (0, 0), 0.95), (3.3, (-1, 1), 1.04), (-4.2, (1, 0), 0.96)])
def test_matches_torchvision_affine(digits, angle, translate, scale):
    expected = TF.affine(digits, angle=angle, translate=list(translate), scale=scale, shear=[0.0, 0.0],
                         interpolation=InterpolationMode.BILINEAR)
    assert (ours(digits, angle, translate, scale) - expected).abs().max() < 1e-4


def test_matches_torchvision_on_normalised_images_with_background_fill(digits):
    expected = (TF.affine(digits, angle=4.0, translate=[1, 1], scale=0.95, shear=[0.0, 0.0],
                          interpolation=InterpolationMode.BILINEAR) - data.MEAN) / data.STD
    normalised = (digits - data.MEAN) / data.STD
    background = (0.0 - data.MEAN) / data.STD
    assert (ours(normalised, 4.0, (1, 1), 0.95, fill=background) - expected).abs().max() < 1e-4


def test_each_image_gets_its_own_draw(digits):
    same = digits[:1].repeat(8, 1, 1, 1)
    out = augment.random_affine(same, generator=torch.Generator().manual_seed(0))
    for i in range(8):
        for j in range(i + 1, 8):
            assert not torch.allclose(out[i], out[j]), (i, j)


def test_random_affine_keeps_shape_dtype_and_stays_close_to_the_digit(digits):
    out = augment.random_affine(digits, generator=torch.Generator().manual_seed(1))
    assert out.shape == digits.shape and out.dtype == digits.dtype
    assert not torch.equal(out, digits)
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6  # bilinear: a blend of pixels, no overshoot
    # small moves: the centre of mass shifts by at most ~1 px of translation plus a little rotation/scale
    def centre(img):
        w = img.squeeze(1)
        coords = torch.arange(28, dtype=w.dtype)
        return torch.stack([(w.sum(1) * coords).sum(1), (w.sum(2) * coords).sum(1)], 1) / w.sum((1, 2)).unsqueeze(1)

    assert (centre(out) - centre(digits)).norm(dim=1).max() < 2.5


def test_same_generator_seed_same_output(digits):
    a = augment.random_affine(digits, generator=torch.Generator().manual_seed(3))
    b = augment.random_affine(digits, generator=torch.Generator().manual_seed(3))
    c = augment.random_affine(digits, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_parameter_ranges_match_the_seed_recipe():
    angle, translate, scale = augment.random_affine_params(20_000, generator=torch.Generator().manual_seed(0))
    assert angle.min() >= -5 and angle.max() <= 5 and angle.std() > 2
    assert set(translate.unique().tolist()) == {-1.0, 0.0, 1.0}  # 5% of 28 px, whole pixels
    assert scale.min() >= 0.95 and scale.max() <= 1.05


def test_augmentation_ranges_bound_the_draws():
    gen = torch.Generator().manual_seed(0)
    angle, shift, scale = augment.random_affine_params(5000, generator=gen, degrees=12.0, translate=0.1)
    assert angle.abs().max() <= 12.0 and angle.abs().max() > 11.0
    assert shift.abs().max() == round(0.1 * 28) and torch.equal(shift, shift.round())
    assert scale.min() >= 1 - augment.SCALE and scale.max() <= 1 + augment.SCALE
    default = augment.random_affine_params(5000, generator=torch.Generator().manual_seed(0))
    assert default[0].abs().max() <= augment.DEGREES


def test_seed_recipe_blur_is_the_identity(digits):
    """GaussianBlur(3, sigma<=0.02) has side weights exp(-1250) == 0: that is why we drop it."""
    for sigma in (0.01, 0.02):
        assert torch.equal(TF.gaussian_blur(digits, kernel_size=[3, 3], sigma=[sigma, sigma]), digits)
