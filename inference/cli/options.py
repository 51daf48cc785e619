"""Command-line options shared by subcommands: length and sampling (`generate`, `ask`), tensor parallel (all that load)."""
from __future__ import annotations

import argparse


def sampling_options(parser: argparse.ArgumentParser) -> None:
    """--max-new-tokens, --greedy and the sampling overrides, each with its help text."""
    parser.add_argument("--max-new-tokens", type=int, metavar="N",
                        help="most tokens to generate (default: the model's default, within MAX_SEQ_LEN)")
    parser.add_argument("--greedy", action="store_true", help="argmax decoding (no sampling, no penalty)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default: the model's)")
    parser.add_argument("--top-k", type=int, metavar="K", help="sample among the K likeliest tokens (0: all)")
    parser.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling: the smallest set with mass P")
    parser.add_argument("--repetition-penalty", type=float, metavar="R",
                        help="penalty on tokens already seen (1: none)")
    parser.add_argument("--seed", type=int, metavar="S", help="random seed, for a repeatable sample")


def tensor_parallel_option(parser: argparse.ArgumentParser, default) -> None:
    """--tensor-parallel N: one model split over N devices (on the CPU: N processes over gloo)."""
    parser.add_argument("--tensor-parallel", type=int, metavar="N", default=default or 1,
                        help="split the model over N devices of the chosen kind (NPUs over HCCL, GPUs over NCCL, "
                             "CPU processes over gloo; default 1)")
