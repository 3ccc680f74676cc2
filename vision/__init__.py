"""Conv2D image classification: data loaders and an image classifier.

```python
X, y = vision.load_digits()                       # embedded real digits (N, 8, 8, 1)
X, y = vision.load_idx(images_path, labels_path)  # MNIST IDX files, .gz or not
X, y = vision.load_image_folder(root, size=(28, 28))   # one folder per class
clf = vision.ImageClassifier(architecture="lenet5", seed=0).fit(X, y)
```
"""
from .datasets import load_digits, load_idx, read_idx, write_idx
from .folder import load_image_folder
from .classifier import ImageClassifier, resize_images
from . import networks

__all__ = ["load_digits", "load_idx", "read_idx", "write_idx", "load_image_folder", "ImageClassifier",
           "resize_images", "networks"]
