"""The GAN as one `keras.Model`: a generator and a discriminator trained against each other
by their own `train_step` (the keras-io GAN pattern, Keras 3 on the TensorFlow backend).

- Randomness comes from a `SeedGenerator` the model owns, and the grid's fixed noise is a
  model variable: both are in `model.variables`, so a run's backup resumes them exactly.
- Two optimizers: `optimizer` (the generator's, what Keras' `compile` sees) and
  `d_optimizer`; `optimizers` lists both for the backup. Under mixed_float16 Keras wraps only
  the first in a LossScaleOptimizer; `compile` wraps the second, and each loss is scaled
  inside its tape (`scale_loss`).
- Under tf.distribute each replica's loss is its sum divided by the *global* batch (the
  optimizers sum the replicas' gradients; a weight penalty, the same on every replica, is
  divided by the number of replicas); the trackers get the per-replica mean, which Keras
  averages over replicas, so the logs read the same for any number of replicas.
- Every replica holds the same SeedGenerator state, so a draw of one replica's batch would
  give every replica the same noise. Each replica draws for the *global* batch and takes its
  own rows instead: the replicas' noise (and gradient-penalty mix weights) differ, and
  together they are what one replica draws for the whole batch.
- `save()` writes the generator alone: a GAN run's model.keras is the model a user samples
  from, a plain functional model that loads in safe mode.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kexp.tasks.gan import losses
from kexp.tasks.gan.pictures import to_uint8

GRID_ROWS = 10  # the fixed-noise grid is 10 x 10: one row per class when conditional
PENALTY_EPSILON = 1e-12  # inside the square root: the gradient norm's gradient stays finite


class GAN(keras.Model):
    """A generator and a discriminator with their adversarial train and test steps.

    Args:
        generator: noise (and an int label when `label_classes`) -> images in [-1, 1].
        discriminator: images (and a label) -> one score per image.
        latent_dim: length of the noise vector.
        label_classes: > 0: conditional on the data's labels; 0: unconditional.
        loss: one of `losses.LOSSES`.
        n_critic: discriminator steps per generator step (5 for wgan_gp in the paper).
        gp_weight: weight of the gradient penalty (wgan_gp).
        label_smoothing: one-sided: the discriminator's target for real images is
            1 - label_smoothing (bce, lsgan).
        seed: seed of the model's random stream and of the fixed grid noise.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, *, latent_dim: int,
                 label_classes: int = 0, loss: str = "bce", n_critic: int = 1,
                 gp_weight: float = 10.0, label_smoothing: float = 0.0,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", "gan"), **kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.label_classes = int(latent_dim), int(label_classes)
        self.kind, self.n_critic = loss, int(n_critic)
        self.gp_weight, self.label_smoothing = float(gp_weight), float(label_smoothing)
        self.seed_generator = keras.random.SeedGenerator(seed)
        rng = np.random.default_rng(seed)
        count = GRID_ROWS * GRID_ROWS
        self.fixed_noise = self.add_weight(
            shape=(count, self.latent_dim), trainable=False, name="fixed_noise",
            initializer=keras.initializers.Constant(
                rng.standard_normal((count, self.latent_dim)).astype("float32")))
        # row r of the grid shows class r (mod the number of classes)
        self.fixed_labels = np.arange(count) // GRID_ROWS % max(1, self.label_classes)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in
                         ("d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy")}
        self.d_optimizer: keras.optimizers.Optimizer | None = None
        self.built = True

    # ------------------------------------------------------------------ Keras plumbing

    def compile(self, optimizer: keras.optimizers.Optimizer,
                d_optimizer: keras.optimizers.Optimizer, **kwargs: Any) -> None:
        """`optimizer` trains the generator, `d_optimizer` the discriminator; other keyword
        arguments (jit_compile, steps_per_execution) go to Keras' `compile`."""
        super().compile(optimizer=optimizer, **kwargs)
        if (self.dtype_policy.name == "mixed_float16"
                and not isinstance(d_optimizer, keras.optimizers.LossScaleOptimizer)):
            d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
        self.d_optimizer = d_optimizer
        # each optimizer's slots are for its own network's weights (built now, so Keras
        # does not build the generator's on every trainable variable of the model)
        self.optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def optimizers(self) -> list[keras.optimizers.Optimizer]:
        return [self.optimizer, self.d_optimizer]

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.generator(inputs, training=training)

    def save(self, filepath: Any, *args: Any, **kwargs: Any) -> None:
        """Save the generator, the part a user samples from (see the module docstring)."""
        self.generator.save(filepath, *args, **kwargs)

    # ------------------------------------------------------------------ the game

    def noise(self, batch: Any, rows: tuple[Any, Any] | None = None) -> Any:
        """`batch` noise vectors: this replica's `rows` (see `_rows`) of a draw for the
        global batch."""
        return self._draw(lambda n: keras.random.normal((n, self.latent_dim),
                                                        seed=self.seed_generator), batch, rows)

    def generate(self, noise: Any, labels: Any = None, training: bool = False) -> Any:
        inputs = [noise, labels] if self.label_classes else noise
        return self.generator(inputs, training=training)

    def judge(self, images: Any, labels: Any = None, training: bool = False) -> Any:
        inputs = [images, labels] if self.label_classes else images
        return ops.reshape(self.discriminator(inputs, training=training), (-1,))

    def train_step(self, data: Any) -> dict[str, Any]:
        real, labels = self._real(data)
        batch = tf.shape(real)[0]
        rows = self._rows(batch)
        for _ in range(self.n_critic):
            noise = self.noise(batch, rows)
            with tf.GradientTape() as tape:
                fake = self.generate(noise, labels, training=True)
                real_scores = self.judge(real, labels, training=True)
                fake_scores = self.judge(fake, labels, training=True)
                d_loss = ops.mean(losses.discriminator_loss(
                    self.kind, real_scores, fake_scores, self.label_smoothing))
                if self.kind == "wgan_gp":
                    d_loss += self.gp_weight * ops.mean(self._penalty(real, fake, labels, rows))
                d_loss, scaled = self._replica_loss(d_loss, self.discriminator, self.d_optimizer,
                                                    batch, rows)
            self._update(tape, scaled, self.d_optimizer, self.discriminator)

        noise = self.noise(batch, rows)
        with tf.GradientTape() as tape:
            g_scores = self.judge(self.generate(noise, labels, training=True), labels,
                                  training=True)
            g_loss = ops.mean(losses.generator_loss(self.kind, g_scores))
            g_loss, scaled = self._replica_loss(g_loss, self.generator, self.optimizer, batch,
                                                rows)
        self._update(tape, scaled, self.optimizer, self.generator)
        return self._track(d_loss, g_loss, real_scores, fake_scores)

    def _replica_loss(self, loss: Any, network: keras.Model,
                      optimizer: keras.optimizers.Optimizer, batch: Any,
                      rows: tuple[Any, Any]) -> tuple[Any, Any]:
        """(the loss to log, what this replica differentiates), inside the tape: the batch
        mean plus the network's weight penalties; to differentiate, the mean weighted by this
        replica's share of the global batch and the penalties (the same on every replica)
        divided by the replicas, as the optimizer sums the replicas' gradients, then scaled
        for mixed precision (a LossScaleOptimizer's apply_gradients undoes it)."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        share = ops.cast(batch, "float32") / ops.cast(rows[1], "float32")
        penalty = self._regularization(network)
        return loss + penalty, optimizer.scale_loss(loss * share + penalty / replicas)

    @staticmethod
    def _update(tape: tf.GradientTape, scaled: Any, optimizer: keras.optimizers.Optimizer,
                network: keras.Model) -> None:
        """One step of `optimizer` on `network`'s weights."""
        weights = network.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights, strict=True))

    def test_step(self, data: Any) -> dict[str, Any]:
        """The same losses on held-out images, nothing updated (wgan_gp: without the
        penalty, which needs the gradient with respect to the images)."""
        real, labels = self._real(data)
        batch = tf.shape(real)[0]
        fake = self.generate(self.noise(batch, self._rows(batch)), labels)
        real_scores, fake_scores = self.judge(real, labels), self.judge(fake, labels)
        d_loss = ops.mean(losses.discriminator_loss(self.kind, real_scores, fake_scores,
                                                    self.label_smoothing))
        g_loss = ops.mean(losses.generator_loss(self.kind, fake_scores))
        return self._track(d_loss, g_loss, real_scores, fake_scores)

    # ------------------------------------------------------------------ parts of a step

    def _real(self, data: Any) -> tuple[Any, Any]:
        """The batch's images mapped from the pipeline's [0, 1] to the generator's [-1, 1],
        and its labels (None when unconditional)."""
        images, labels = data[0], data[1]
        real = ops.cast(images, "float32") * 2.0 - 1.0
        return real, (ops.cast(labels, "int32") if self.label_classes else None)

    def _rows(self, batch: Any) -> tuple[Any, Any]:
        """(first row, global batch): where this replica's `batch` examples sit in the
        global batch (replica r holds the r-th block; a last partial batch may split
        unevenly). One replica: (0, batch)."""
        context = tf.distribute.get_replica_context()
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if context is None or replicas == 1:
            return 0, batch
        mine = tf.one_hot(context.replica_id_in_sync_group, replicas, dtype="float32")
        sizes = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                   mine * tf.cast(batch, "float32"))
        before = tf.reduce_sum(sizes * tf.cast(tf.range(replicas) <
                                               context.replica_id_in_sync_group, "float32"))
        return tf.cast(before, "int32"), tf.cast(tf.reduce_sum(sizes), "int32")

    @staticmethod
    def _draw(draw: Any, batch: Any, rows: tuple[Any, Any] | None) -> Any:
        """`draw(n)` for the global batch, cut to this replica's rows."""
        if rows is None:
            return draw(batch)
        first, total = rows
        return draw(total)[first:first + batch]

    def _penalty(self, real: Any, fake: Any, labels: Any,
                 rows: tuple[Any, Any] | None = None) -> Any:
        """Per-example (||grad D(x_hat)|| - 1)^2 at x_hat drawn uniformly on the line from a
        generated image to a real one (Gulrajani et al. 2017)."""
        weight = self._draw(lambda n: keras.random.uniform((n, 1, 1, 1),
                                                           seed=self.seed_generator),
                            ops.shape(real)[0], rows)
        mixed = weight * real + (1.0 - weight) * ops.cast(fake, real.dtype)
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            scores = self.judge(mixed, labels, training=True)
        grads = tape.gradient(scores, mixed)
        norm = ops.sqrt(ops.sum(ops.square(grads), axis=[1, 2, 3]) + PENALTY_EPSILON)
        return ops.square(norm - 1.0)

    @staticmethod
    def _regularization(network: keras.Model) -> Any:
        """The network's weight penalties (model.l1/l2 of a builder that has them)."""
        return ops.sum(network.losses) if network.losses else 0.0

    def _track(self, d_loss: Any, g_loss: Any, real_scores: Any, fake_scores: Any
               ) -> dict[str, Any]:
        real_ok, fake_called_real = losses.judged_real(self.kind, real_scores, fake_scores)
        for name, value in (("d_loss", d_loss), ("g_loss", g_loss),
                            ("d_real_accuracy", ops.mean(ops.cast(real_ok, "float32"))),
                            ("d_fake_accuracy",
                             1.0 - ops.mean(ops.cast(fake_called_real, "float32")))):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    # ------------------------------------------------------------------ pictures

    def fixed_grid_images(self) -> np.ndarray:
        """The fixed noise's images (GRID_ROWS**2, H, W, C) as uint8, for the grid."""
        labels = ops.convert_to_tensor(self.fixed_labels, "int32") if self.label_classes \
            else None
        images = self.generate(self.fixed_noise, labels)
        return to_uint8(ops.convert_to_numpy(images))
