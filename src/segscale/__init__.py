"""segscale: scaling studies of distributed training of medical-image segmentation CNNs."""

__version__ = "0.1.0"
