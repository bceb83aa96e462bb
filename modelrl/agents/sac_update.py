"""SAC's gradient step run faster than eagerly: replayed from a captured CUDA graph, or compiled whole.

The eager step (`SACLearner._gradient_step`) is bound by its hundred-odd kernel launches and dispatches, not
by its matmuls. On CUDA, `CudaGraphStep` captures it once per batch shape and replays it (9-10x on one
H200); `CompiledStep` traces the same losses, gradients (torch.func) and Adam steps (`adam_update_`, written
in foreach ops) into one `torch.compile` graph, on CPU or GPU. Both compute what the eager step does, random
draws included; checkpoints written by any of the three load into the others.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.func import functional_call, grad_and_value

from modelrl.device import require_cpp_compiler

if TYPE_CHECKING:
    from modelrl.agents.sac import SACLearner

Batch = dict[str, torch.Tensor]
GRAPH_WARMUP_STEPS = 3  # eager updates before a CUDA graph is captured


class CudaGraphStep:
    """`step(batch)` replayed from a CUDA graph captured once per batch shape. The first few steps run eagerly
    on a side stream, as capture needs (lazy cuBLAS and optimiser state are set up there)."""

    def __init__(self, step: Callable[[Batch], Batch], generator: torch.Generator, device: torch.device):
        self.step, self.generator, self.device = step, generator, device
        self.graphs: dict[tuple, tuple] = {}  # batch shapes -> (graph, its input tensors, its outputs)
        self.eager_warmups = 0

    def __call__(self, batch: Batch) -> Batch:
        key = tuple((name, tuple(value.shape), value.dtype) for name, value in batch.items())
        if key in self.graphs:
            graph, inputs, outputs = self.graphs[key]
            for name, value in batch.items():
                inputs[name].copy_(value)
        elif self.eager_warmups < GRAPH_WARMUP_STEPS:
            self.eager_warmups += 1
            side, current = torch.cuda.Stream(self.device), torch.cuda.current_stream(self.device)
            side.wait_stream(current)
            with torch.cuda.stream(side), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "This instance was constructed with capturable=True")
                losses = self.step(batch)
            current.wait_stream(side)
            return losses
        else:
            inputs = {name: value.clone() for name, value in batch.items()}
            graph = torch.cuda.CUDAGraph()
            graph.register_generator_state(self.generator)  # its draws advance with every replay
            with torch.cuda.graph(graph):
                outputs = self.step(inputs)
            self.graphs[key] = graph, inputs, outputs
        graph.replay()
        return outputs


class CompiledStep:
    """`functional_gradient_step`, compiled, on the learner's parameters and its optimisers' own state (so a
    checkpoint is the same whichever step wrote it); the policy's noise is drawn here, in the eager step's
    order (next observations first), since the compiled graph cannot take a generator."""

    def __init__(self, learner: SACLearner):
        if learner.device.type == "cpu":
            require_cpp_compiler()
        self.learner = learner
        self.compiled = torch.compile(functional_gradient_step, fullgraph=True)

    def __call__(self, batch: Batch) -> Batch:
        learner, action = self.learner, batch["action"]
        next_noise, noise = (torch.randn(action.shape, generator=learner.generator, device=action.device,
                                         dtype=action.dtype) for _ in range(2))
        with torch.no_grad():
            return self.compiled(learner, batch, next_noise, noise, adam_state(learner.critic_optimizer),
                                 adam_state(learner.actor_optimizer),
                                 (adam_state(learner.alpha_optimizer) if learner.config.autotune_alpha
                                  else None))


def adam_state(optimizer: torch.optim.Adam) -> dict[str, Any]:
    """An Adam's parameters with their moments and step counts, created as `Adam.step` would (zeros, with a
    float32 step on the parameter's device, as fused Adam keeps it) when it has not stepped yet."""
    group = optimizer.param_groups[0]
    params = group["params"]
    for param in params:
        state = optimizer.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    states = [optimizer.state[param] for param in params]
    return {"params": params, "lr": group["lr"], "betas": group["betas"], "eps": group["eps"],
            "exp_avg": [state["exp_avg"] for state in states],
            "exp_avg_sq": [state["exp_avg_sq"] for state in states],
            "step": [state["step"] for state in states]}


def adam_update_(adam: dict[str, Any], grads: list[torch.Tensor]) -> None:
    """torch.optim.Adam's step (no weight decay, no amsgrad) in place, written as plain tensor ops so that it
    compiles into the same graph as the gradients."""
    (beta1, beta2), params = adam["betas"], adam["params"]
    torch._foreach_add_(adam["step"], 1.0)
    step = adam["step"][0]
    # beta ** step as exp(step log beta): the compiled kernels recompute these scalars in every vector
    # iteration, and a scalar pow there made Adam three times slower (430 against 130 µs for the critics)
    bias_correction1 = 1 - torch.exp(step * math.log(beta1))
    bias_correction2 = 1 - torch.exp(step * math.log(beta2))
    torch._foreach_lerp_(adam["exp_avg"], grads, 1 - beta1)
    torch._foreach_mul_(adam["exp_avg_sq"], beta2)
    torch._foreach_addcmul_(adam["exp_avg_sq"], grads, grads, 1 - beta2)
    denominator = torch._foreach_div(torch._foreach_sqrt(adam["exp_avg_sq"]), bias_correction2.sqrt())
    torch._foreach_add_(denominator, adam["eps"])
    updates = torch._foreach_div(adam["exp_avg"], denominator)
    torch._foreach_mul_(updates, -adam["lr"] / bias_correction1)
    torch._foreach_add_(params, updates)


def functional_gradient_step(learner: SACLearner, batch: Batch, next_noise: torch.Tensor, noise: torch.Tensor,
                             critic_adam: dict, actor_adam: dict, alpha_adam: dict | None) -> Batch:
    """`SACLearner._gradient_step` as one traceable function: the same losses, in the same order, through the
    same modules, with gradients from torch.func and Adam as `adam_update_`; meant for torch.compile."""
    alpha = learner.log_alpha.exp()
    with learner.precision():
        target = learner.bellman_target(batch["reward"], batch["next_obs"], batch["terminated"], alpha,
                                        noise=next_noise)
    critic_names = [name for name, _ in learner.critic.named_parameters()]

    def critic_loss(params):
        with learner.precision():
            q = functional_call(learner.critic, params, (batch["obs"], batch["action"]))
        return learner.critic_loss(q, target), q

    grads, (loss, q) = grad_and_value(critic_loss, has_aux=True)(dict(zip(critic_names, critic_adam["params"],
                                                                         strict=True)))
    adam_update_(critic_adam, [grads[name] for name in critic_names])
    actor_names = [name for name, _ in learner.actor.named_parameters()]

    def actor_loss(params):
        with learner.precision():
            action, log_prob = functional_call(learner.actor, params, (batch["obs"],), {"noise": noise})
            return learner.policy_loss(batch["obs"], action, log_prob, alpha), log_prob

    grads, (policy_loss, log_prob) = grad_and_value(actor_loss, has_aux=True)(
        dict(zip(actor_names, actor_adam["params"], strict=True)))
    adam_update_(actor_adam, [grads[name] for name in actor_names])
    if learner.config.autotune_alpha:  # d/d(log alpha) of -(log alpha (log pi + target entropy)).mean()
        adam_update_(alpha_adam, [-(log_prob + learner.target_entropy).mean()])
    return {"critic_loss": loss, "actor_loss": policy_loss, "alpha": alpha, "entropy": -log_prob.mean(),
            "q_value": q.mean()}
