import numpy as np
import pytest

from fkd_tf.core import keypoints


def test_mirror_pairs_from_the_ibug_markup():
  perm = keypoints.MIRROR_PERMUTATION
  expected = {0: 16, 7: 9, 8: 8, 17: 26, 21: 22, 27: 27, 30: 30, 31: 35, 32: 34, 33: 33,
              36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 48: 54, 49: 53, 50: 52, 51: 51,
              55: 59, 56: 58, 57: 57, 60: 64, 61: 63, 62: 62, 65: 67, 66: 66}
  for a, b in expected.items():
    assert perm[a] == b and perm[b] == a
  np.testing.assert_array_equal(np.sort(perm), np.arange(68))


@pytest.mark.parametrize("name,person", [("Luis_Fonsi_21.jpg", "Luis_Fonsi"),
                                         ("a/b/Kim_Jong-il_00.png", "Kim_Jong-il"),
                                         ("X_1_2_03.jpg", "X_1_2")])
def test_person_id(name, person):
  assert keypoints.person_id(name) == person


def test_person_id_rejects_names_without_frame_number():
  with pytest.raises(ValueError, match="noframe.jpg"):
    keypoints.person_id("noframe.jpg")
