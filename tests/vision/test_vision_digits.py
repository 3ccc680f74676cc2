"""The embedded digits data set."""
import numpy as np
from sklearn.datasets import load_digits as sk_load_digits

import vision


def test_load_digits_shape_range_and_content():
    X, y = vision.load_digits()
    assert X.shape == (1797, 8, 8, 1) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16
    np.testing.assert_array_equal(np.unique(y), np.arange(10))
    # same pixels as scikit-learn's flat rows, in row-major order
    flat = sk_load_digits().data
    np.testing.assert_array_equal(X.reshape(1797, 64), flat.astype(np.float32))
