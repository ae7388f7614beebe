// A placeholder layer that passes its input through (torch.nn.Identity), e.g. to drop a head.
import type { Tensor } from "../engine/index.js";
import { Module } from "./module.js";

export class Identity extends Module {
  /**
   * A new handle to the same tensor (same storage and autograd identity) rather than `x`
   * itself, so that the caller may dispose the output without freeing the input.
   */
  forward(x: Tensor): Tensor {
    return x.alias();
  }
}
