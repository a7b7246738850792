"""Everything between a pretrained model and a servable LIMA checkpoint: import, data, training, merge, eval."""
