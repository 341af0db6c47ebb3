"""The model corpus (issue 24 item 10): small models to run ``conv-parity model --builder`` on.

Each ``build_*`` function takes no argument and returns a fresh model at a small, fixed input
size, so that ``--builder corpus_models:build_vit`` builds it offline in every worker. The
keras-hub ones are real backbones from their own constructors (keras-hub 0.32.0: the
constructor signatures are why the ``[models]`` extra pins it), shrunk to a few blocks and 32x32
images; the others are the shapes of model people bring that a backbone zoo does not have: a
dict-output detector, an int-input text model, two inputs, a custom subclassed layer. Weights are
the test's to seed (``conv_parity.model.load.reseed`` before ``save_weights``).
"""

from __future__ import annotations

from typing import Any

import keras

#: keras-hub builders need keras_hub; the others run with Keras alone.
NEEDS_KERAS_HUB: set[str] = set()


def _hub(fn: Any) -> Any:
    NEEDS_KERAS_HUB.add(fn.__name__)
    return fn


def _keras_hub() -> Any:
    import keras_hub

    return keras_hub


def _resnet(data_format: str | None = None, image: tuple[int, int, int] = (32, 32, 3)) -> Any:
    return _keras_hub().models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 16, 16],
        stackwise_num_blocks=[1, 1, 1], stackwise_num_strides=[1, 2, 2],
        block_type="basic_block", image_shape=image, data_format=data_format)


@_hub
def build_resnet() -> Any:
    return _resnet()


@_hub
def build_resnet_channels_first() -> Any:
    return _resnet("channels_first", (3, 32, 32))


@_hub
def build_resnet_vd() -> Any:
    """ResNet-vd: the avg-pool shortcut and the three-conv stem (pre-activation bottlenecks)."""
    return _keras_hub().models.ResNetBackbone(
        input_conv_filters=[8, 8, 16], input_conv_kernel_sizes=[3, 3, 3],
        stackwise_num_filters=[64, 16], stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2],
        block_type="bottleneck_block_vd", image_shape=(32, 32, 3))


@_hub
def build_cspnet() -> Any:
    return _keras_hub().models.CSPNetBackbone(
        stem_filters=8, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 1],
        stackwise_strides=[1, 2], stackwise_num_filters=[8, 16], block_type="dark_block", stage_type="dark",
        image_shape=(32, 32, 3))


@_hub
def build_mobilenetv3() -> Any:
    return _keras_hub().models.MobileNetBackbone(
        stackwise_expansion=[[16, 24], [32]], stackwise_num_blocks=[2, 1],
        stackwise_num_filters=[[8, 8], [16]], stackwise_kernel_size=[[3, 3], [5]],
        stackwise_num_strides=[[2, 1], [2]], stackwise_se_ratio=[[None, None], [0.25]],
        stackwise_activation=[["relu", "relu"], ["hard_swish"]],
        stackwise_padding=[[1, 1], [2]], output_num_filters=32, depthwise_filters=8,
        depthwise_stride=1, depthwise_residual=False, last_layer_filter=32,
        squeeze_and_excite=0.5, input_num_filters=8, image_shape=(32, 32, 3))


@_hub
def build_mobilenetv5() -> Any:
    """MobileNetV5 (Gemma 3n's vision tower): edge residual + universal inverted residual
    blocks, whose depthwise convs the corpus test names."""
    return _keras_hub().models.MobileNetV5Backbone(
        stackwise_block_types=[["er"], ["uir", "uir"]], stackwise_num_blocks=[1, 2],
        stackwise_num_filters=[[8], [16, 16]], stackwise_strides=[[2], [2, 1]],
        stackwise_act_layers=[["relu"], ["relu", "relu"]],
        stackwise_exp_ratios=[[4.0], [2.0, 2.0]], stackwise_se_ratios=[[0.0], [0.0, 0.0]],
        stackwise_dw_kernel_sizes=[[0], [5, 3]], stackwise_dw_start_kernel_sizes=[[0], [3, 0]],
        stackwise_dw_end_kernel_sizes=[[0], [0, 3]], stackwise_exp_kernel_sizes=[[3], [0, 0]],
        stackwise_pw_kernel_sizes=[[1], [0, 0]], stackwise_num_heads=[[0], [0, 0]],
        stackwise_key_dims=[[0], [0, 0]], stackwise_value_dims=[[0], [0, 0]],
        stackwise_kv_strides=[[0], [0, 0]], stackwise_use_cpe=[[False], [False, False]],
        stem_size=8, num_features=32, use_msfa=False, image_shape=(32, 32, 3))


@_hub
def build_efficientnetv2() -> Any:
    return _keras_hub().models.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3, 3], stackwise_num_repeats=[1, 1, 1],
        stackwise_input_filters=[8, 8, 16], stackwise_output_filters=[8, 16, 16],
        stackwise_expansion_ratios=[1, 2, 2], stackwise_squeeze_and_excite_ratios=[0.0, 0.0, 0.25],
        stackwise_strides=[1, 2, 2], stackwise_block_types=["fused", "fused", "unfused"],
        stackwise_width_coefficients=[1.0] * 3, stackwise_depth_coefficients=[1.0] * 3,
        num_features=32, input_shape=(32, 32, 3))


@_hub
def build_vit() -> Any:
    """ViT: its patch embedding is a Conv2D with kernel = stride = patch size."""
    return _keras_hub().models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
        mlp_dim=32)


@_hub
def build_mit() -> Any:
    """MiT (SegFormer's encoder): overlapping patch embeddings and strided reduction convs."""
    return _keras_hub().models.MiTBackbone(
        layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[4, 2], max_drop_path_rate=0.0, layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2], hidden_dims=[8, 16], image_shape=(32, 32, 3))


@_hub
def build_deeplabv3() -> Any:
    """DeepLabV3 on a small ResNet: the ASPP's dilated 3x3 convs the corpus test names."""
    hub = _keras_hub()
    encoder = hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 16, 16],
        stackwise_num_blocks=[1, 1, 1], stackwise_num_strides=[1, 2, 2],
        block_type="basic_block", image_shape=(32, 32, 3))
    return hub.models.DeepLabV3Backbone(
        image_encoder=encoder, spatial_pyramid_pooling_key="P4", upsampling_size=4,
        dilation_rates=[2, 3], low_level_feature_key="P2", projection_filters=8,
        image_shape=(32, 32, 3))


@_hub
def build_hgnetv2() -> Any:
    return _keras_hub().models.HGNetV2Backbone(
        depths=[1, 1], embedding_size=8, hidden_sizes=[16, 32], stem_channels=[3, 8, 8],
        hidden_act="relu", use_learnable_affine_block=False,
        stackwise_stage_filters=[(8, 8, 16, 1, 2, 3), (16, 8, 32, 1, 2, 3)],
        apply_downsample=[False, True], use_lightweight_conv_block=[False, True],
        image_shape=(32, 32, 3))


@_hub
def build_swin() -> Any:
    return _keras_hub().models.SwinTransformerBackbone(
        image_shape=(32, 32, 3), embed_dim=8, depths=(1, 1), num_heads=(1, 2), window_size=4,
        patch_size=4, drop_path=0.0)


@_hub
def build_xception() -> Any:
    """Xception: the separable convs whose Keras 2 configs block a migration."""
    return _keras_hub().models.XceptionBackbone(
        stackwise_conv_filters=[[8, 8], [16, 16], [16, 16], [16, 16]],
        stackwise_pooling=[False, True, False, True], image_shape=(32, 32, 3))


def build_retinanet() -> Any:
    """RetinaNet-style: a small conv encoder, a feature pyramid (lateral 1x1 convs, top-down
    upsampling, 3x3 output convs, a strided P6), class and box heads shared by every level,
    and a dict of outputs by name. Keras alone: keras-hub's RetinaNetBackbone fixes the
    pyramid at 256 filters (1.9M weights at 64x64; its five-backend check did not finish in
    15 minutes on the shared 2-core VM)."""
    layers = keras.layers
    image = layers.Input((64, 64, 3), name="images")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stem")(image)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    features = {}
    for level, filters in ((3, 8), (4, 16), (5, 16)):
        x = layers.Conv2D(filters, 3, strides=2 if level > 3 else 1, padding="same",
                          activation="relu", name=f"c{level}")(x)
        features[level] = x
    top = None
    pyramid = {}
    for level in (5, 4, 3):
        lateral = layers.Conv2D(16, 1, name=f"lateral_p{level}")(features[level])
        if top is not None:
            lateral = layers.Add(name=f"merge_p{level}")(
                [lateral, layers.UpSampling2D(2, name=f"up_p{level + 1}")(top)])
        top = lateral
        pyramid[f"P{level}"] = layers.Conv2D(16, 3, padding="same", name=f"out_p{level}")(top)
    pyramid["P6"] = layers.Conv2D(16, 3, strides=2, padding="same", name="p6")(pyramid["P5"])
    classes = layers.Conv2D(6, 3, padding="same", name="class_head")  # shared by every level
    boxes = layers.Conv2D(4, 3, padding="same", name="box_head")
    outputs = {}
    for level in sorted(pyramid):
        outputs[f"classes_{level}"] = classes(pyramid[level])
        outputs[f"boxes_{level}"] = boxes(pyramid[level])
    return keras.Model(image, outputs, name="retinanet")


def build_text_conv1d() -> Any:
    """An int-input text model: token ids, an Embedding, causal and dilated Conv1D."""
    ids = keras.Input((24,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(50, 8, name="embed")(ids)
    x = keras.layers.Conv1D(12, 3, padding="causal", activation="relu", name="causal")(x)
    x = keras.layers.Conv1D(12, 3, dilation_rate=2, padding="same", name="dilated")(x)
    x = keras.layers.MaxPooling1D(2, name="pool")(x)
    x = keras.layers.SeparableConv1D(8, 5, name="sep")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(ids, keras.layers.Dense(3, name="logits")(x), name="text_conv1d")


def build_two_inputs() -> Any:
    """Two image inputs of different sizes, merged after pooling."""
    rgb = keras.Input((24, 24, 3), name="rgb")
    depth = keras.Input((12, 12, 1), name="depth")
    a = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="rgb_conv")(rgb)
    a = keras.layers.AveragePooling2D(2, name="rgb_pool")(a)
    b = keras.layers.Conv2D(8, 3, padding="same", name="depth_conv")(depth)
    b = keras.layers.MaxPooling2D(2, name="depth_pool")(b)
    x = keras.layers.Concatenate(name="merge")([a, b])
    x = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="up")(x)
    return keras.Model([rgb, depth], x, name="two_inputs")


@keras.saving.register_keras_serializable(package="conv_parity_corpus")
class ConvBlock(keras.layers.Layer):
    """A user's subclassed block: conv, depthwise conv, batch norm, residual."""

    def __init__(self, filters: int, data_format: str = "channels_last", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters, self.data_format = filters, data_format
        axis = -1 if data_format == "channels_last" else 1
        self.conv = keras.layers.Conv2D(filters, 3, padding="same", data_format=data_format,
                                        name="conv")
        self.dw = keras.layers.DepthwiseConv2D(3, padding="same", data_format=data_format,
                                               name="dw")
        self.norm = keras.layers.BatchNormalization(axis=axis, name="norm")

    def call(self, x: Any) -> Any:
        y = self.conv(x)
        return y + keras.ops.relu(self.norm(self.dw(y)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "data_format": self.data_format}


def _custom(data_format: str) -> Any:
    shape = (20, 20, 3) if data_format == "channels_last" else (3, 20, 20)
    x = keras.Input(shape, name="image")
    y = ConvBlock(8, data_format, name="block1")(x)
    y = keras.layers.MaxPooling2D(2, data_format=data_format, name="pool")(y)
    y = ConvBlock(8, data_format, name="block2")(y)
    y = keras.layers.Conv2DTranspose(4, 2, strides=2, data_format=data_format, name="up")(y)
    return keras.Model(x, y, name=f"custom_{data_format}")


def build_custom_block() -> Any:
    return _custom("channels_last")


def build_custom_block_channels_first() -> Any:
    return _custom("channels_first")


#: Every corpus model, by the name the test and the docs table use.
BUILDERS: dict[str, Any] = {name[len("build_"):]: fn for name, fn in sorted(globals().items())
                            if name.startswith("build_") and callable(fn)}
