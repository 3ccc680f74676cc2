"""Conv2D image classification: data loaders and an image classifier.

```python
X, y = vision.load_digits()                       # embedded real digits (N, 8, 8, 1)
X, y = vision.load_idx(images_path, labels_path)  # MNIST IDX files, .gz or not
X, y = vision.load_image_folder(root, size=(28, 28))   # one folder per class
clf = vision.ImageClassifier(architecture="lenet5", seed=0).fit(X, y)
clf.predict("photo.png"); clf.predict(X[0])          # a file, a list of files, one image, a batch
folder = vision.ImageFolder(root, size=(28, 28))      # too large for memory: read a batch at a time
clf.fit(folder); clf.predict(folder)
```
"""
from .datasets import load_digits, load_idx, read_idx, write_idx
from .folder import ImageFolder, load_image_folder, read_image_file
from .classifier import ImageClassifier, resize_images
from . import networks

__all__ = ["load_digits", "load_idx", "read_idx", "write_idx", "load_image_folder", "ImageFolder",
           "read_image_file", "ImageClassifier",
           "resize_images", "networks"]
