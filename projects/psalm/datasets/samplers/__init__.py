# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
