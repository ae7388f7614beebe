// Grad-CAM (Selvaraju et al., ICCV 2017): the activation of a model's last convolution block,
// weighted per channel by the spatial mean of the gradient of an objective (a class score, a
// log-odds), summed over channels, rectified and upsampled bilinearly to the image. One copy for
// the project: forensics explains the backdoor expert with it, SentiNet (detectors) finds the
// salient region of M's prediction with it. The zoo exposes the Grad-CAM layer for the compact
// CNN only (its `features` block); other architectures get one error naming the alternatives.
import { F, enableGrad, gradients, tidy, type Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { CompactCNN } from "./compact-cnn.js";

/** Whether gradCam can run on this model. */
export function hasGradCamLayer(model: Module): model is CompactCNN {
  return model instanceof CompactCNN;
}

/**
 * Grad-CAM maps [N * H * W] (non-negative, one per image) of `objective(logits)` (one value per
 * row, rows independent) for already-normalised inputs xn [N, C, H, W]. `who` names the caller
 * in the error for an architecture without a Grad-CAM layer.
 */
export function gradCam(
  model: Module,
  xn: Tensor,
  objective: (logits: Tensor) => Tensor,
  who = "grad-cam",
): Float32Array {
  if (!hasGradCamLayer(model)) {
    throw new RangeError(
      `${who}: Grad-CAM needs the model's convolution blocks, which this build exposes for the compact CNN only (the model is a ${model.constructor.name})`,
    );
  }
  const [n, , h, w] = xn.shape as [number, number, number, number];
  const feats = model.features;
  // The last block's activation (after the last ReLU, before the last pool) is the Grad-CAM layer.
  const last = feats.length - 1;
  return tidy(() =>
    enableGrad(() => {
      let a = xn;
      for (let i = 0; i < last; i++) a = feats.at(i).forward(a);
      const act = a.detach().requiresGrad_();
      const [g] = gradients([objective(model.classifier.forward(feats.at(last).forward(act))).sum()], [act]);
      if (!g) return new Float32Array(n * h * w);
      const weights = g.mean([2, 3], true);
      const cam = act.mul(weights).sum(1, true).relu();
      return F.interpolate(cam, [h, w], "bilinear", false).squeeze(1).contiguous().data() as Float32Array;
    }),
  );
}
