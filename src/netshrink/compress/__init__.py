"""Pure compression algorithms: they take modules and data loaders and return tensors, small
dataclasses or new modules; they read no files, plot nothing and know no profile or manifest.

The functions a user calls on a model of their own are imported here (`__all__`); each module
keeps its own `__all__`, and the rest of a module (fast paths, checks, layer builders) is the
package's inside.
"""

from netshrink.compress.decompose import CONV_METHODS, LINEAR_METHODS, decompose_layer, decompose_model
from netshrink.compress.fold import fold_batch_norm
from netshrink.compress.graph import LayerPath, node_layers, node_path, prunable_convs
from netshrink.compress.importance import ablate, classify, loss_change, taylor
from netshrink.compress.input_features import ImageBasis, decompose_images
from netshrink.compress.masking import MaskEvaluation, evaluate_masks
from netshrink.compress.prune import (
    ShrinkResult,
    magnitude_prune,
    mask_nodes,
    random_node_masks,
    remove_filters,
    remove_nodes,
    shrink_randomly,
    smallest_l1_filters,
)
from netshrink.compress.ranks import layer_parameters, rank_for_budget, select_rank
from netshrink.compress.search import (
    PruneResult,
    Step,
    prefix_masks,
    prune_exhaustive,
    prune_greedy,
    prune_layers,
    prune_once,
    prune_within,
)
from netshrink.compress.sensitivity import Sensitivity, filter_sensitivity
from netshrink.compress.vbmf import evbmf_rank

__all__ = [
    "CONV_METHODS", "LINEAR_METHODS", "ImageBasis", "LayerPath", "MaskEvaluation", "PruneResult",
    "Sensitivity", "ShrinkResult", "Step", "ablate", "classify", "decompose_images", "decompose_layer",
    "decompose_model", "evaluate_masks", "evbmf_rank", "filter_sensitivity", "fold_batch_norm",
    "layer_parameters", "loss_change", "magnitude_prune", "mask_nodes", "node_layers", "node_path",
    "prefix_masks", "prunable_convs", "prune_exhaustive", "prune_greedy", "prune_layers", "prune_once",
    "prune_within", "random_node_masks", "rank_for_budget", "remove_filters", "remove_nodes",
    "select_rank", "shrink_randomly", "smallest_l1_filters", "taylor",
]  # fmt: skip
