"""The ``persyn`` commands, thin over ``persyn.pipeline.Pipeline`` and the stages: ``app`` (the
console script ``persyn`` and ``python -m persyn``). What they print: ``cli.render``; the config
they work on: ``cli.configs``."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import typer
from typer.core import TyperGroup

from persyn.cli.configs import Executor, command_config
from persyn.cli.render import (
    console,
    print_cache_info,
    print_estimate,
    print_ifeval,
    print_router_eval,
    print_strategy_summary,
    print_students_summary,
    print_summary,
    print_synthesis,
)
from persyn.core.errors import BatchesInFlight, InputError, PersynError
from persyn.core.plugins import STRATEGIES
from persyn.core.summary import StrategySummary
from persyn.core.templates import DEFAULT_PROMPT_TEMPLATE


def _untyped_flags(command) -> None:
    """Show on/off flags without a type in help: typer >= 0.29 writes ``<bool>`` beside every
    flag (``--help`` included), which tells a user nothing."""
    if getattr(command, "_untyped_flags", False):
        return
    command._untyped_flags = True
    get_params = command.get_params

    def params(ctx):
        out = get_params(ctx)
        for p in out:
            if getattr(p, "is_flag", False):
                p.display_type_rich = lambda ctx: None
        return out

    command.get_params = params


class _HelpGroup(TyperGroup):
    """The command group of ``persyn`` (and ``persyn cache``): its help and its commands' help
    show flags without a type."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _untyped_flags(self)

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is not None and not isinstance(command, _HelpGroup):
            _untyped_flags(command)
        return command


app = typer.Typer(
    cls=_HelpGroup,
    help="persyn: personalised SFT data for one student model (PerSyn, Route-then-Generate).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # the docstrings' ``code`` renders as code, not as backticks
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version as installed_version

        console.print(f"persyn {installed_version('persyn')}")
        raise typer.Exit()


@app.callback()
def _offline(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print persyn's version and exit."
    ),
) -> None:
    # Before every command: offline by construction (never reach for the hub), quiet loading.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    quiet_library_warnings()


#: Libraries whose deprecation notices a persyn user cannot act on (persyn's own code calls them).
LIBRARIES = ("transformers", "trl", "torch", "peft", "accelerate", "datasets")


def quiet_library_warnings() -> None:
    """Send the FutureWarnings and DeprecationWarnings raised inside the model libraries to the
    ``py.warnings`` log (DEBUG; shown with ``PERSYN_LOG_LEVEL=debug``) instead of the console:
    they speak of persyn's calls, not of anything the user wrote. Other warnings print."""
    import logging
    import warnings

    shown = warnings.showwarning
    if getattr(shown, "persyn_quiet", False):
        return
    log = logging.getLogger("py.warnings")

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (FutureWarning, DeprecationWarning)) and any(
            f"/{lib}/" in filename.replace("\\", "/") for lib in LIBRARIES
        ):
            log.debug("%s:%s: %s: %s", filename, lineno, category.__name__, message)
            return
        shown(message, category, filename, lineno, file, line)

    show.persyn_quiet = True
    warnings.showwarning = show
    if os.environ.get("PERSYN_LOG_LEVEL", "").lower() == "debug":
        logging.basicConfig(level=logging.DEBUG)


ConfigArg = typer.Argument(
    ..., help="Run configuration (YAML), or a run's output directory (its run_config.json).", exists=False
)
OutputOpt = typer.Option(None, "--output-dir", "-o", help="Override output_dir of the config.")
ExecutorOpt = typer.Option(
    None, "--executor", help="Override executor of the config: local, or ray (needs the ray extra)."
)
RayAddressOpt = typer.Option(
    None, "--ray-address", help="Ray cluster to join (implies --executor ray); default $RAY_ADDRESS."
)


def open_pipeline(cfg):
    """The pipeline of a validated run config, printing to the commands' console."""
    from persyn.pipeline import Pipeline

    return Pipeline(cfg, console)


def _pipeline(
    config: Path, output_dir: Path | None, executor: Executor | None = None, ray_address: str | None = None
):
    return open_pipeline(command_config(config, output_dir, executor, ray_address))


def _fail(exc: PersynError) -> None:
    # soft_wrap: a long path stays whole on its line (copyable), the terminal wraps it
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def reported_errors():
    """A ``PersynError`` raised in the block is printed (no traceback) and exits with status 2;
    ``BatchesInFlight`` (batches submitted with ``batch.wait: false``) is a status: printed,
    exit 0."""
    try:
        yield
    except BatchesInFlight as exc:
        console.print(f"[bold yellow]batches in flight:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(0) from None
    except PersynError as exc:
        _fail(exc)


RequireAllOpt = typer.Option(False, "--require-all", help="Exit with status 1 if any item failed.")


@app.command()
def run(
    config: Path = ConfigArg,
    output_dir: Path | None = OutputOpt,
    require_all: bool = RequireAllOpt,
    executor: Executor | None = ExecutorOpt,
    ray_address: str | None = RayAddressOpt,
) -> None:
    """Run every stage (resumes from the store in the output directory). With ``students:``,
    one run per student in OUTPUT_DIR/students/NAME, sharing the teachers' responses."""
    with reported_errors():
        cfg = command_config(config, output_dir, executor, ray_address)
        if cfg.students is not None:
            from persyn.students import run_students

            summary = run_students(cfg, console)
            print_students_summary(summary, cfg.output_dir)
            failed = sum(s.failed for s in summary.students.values())
            if require_all and failed:
                console.print(f"[bold red]--require-all:[/] {failed} item(s) failed (see failed.jsonl)")
                raise typer.Exit(1)
            return
        with open_pipeline(cfg) as p:  # the config validated once, above
            summary = p.run()
        if isinstance(summary, StrategySummary):
            print_strategy_summary(summary, p.out / "strategies" / summary.strategy)
        else:
            print_summary(summary, p.out)
    if require_all and summary.failed:
        console.print(f"[bold red]--require-all:[/] {summary.failed} item(s) failed (see failed.jsonl)")
        raise typer.Exit(1)


def demo_config_path() -> Path:
    """The packaged demo configuration."""
    return Path(str(files("persyn").joinpath("configs/demo.yaml")))


@app.command()
def demo(output_dir: Path = typer.Option(Path("runs/demo"), "--output-dir", "-o")) -> None:
    """Run the packaged demo: PerSyn on 96 chain_sum prompts with the packaged SmolLM2 (configs/demo.yaml)."""
    console.print(f"config: {demo_config_path()}")
    run(demo_config_path(), output_dir, require_all=False, executor=None, ray_address=None)


@app.command()
def init(
    directory: Path = typer.Argument(Path("my-run"), help="Where the example goes (created)."),
) -> None:
    """Start your own run: write the packaged example (run.yaml and its problems.jsonl: your
    prompts, teachers and student in one file) into DIRECTORY, then edit and run it."""
    source = files("persyn").joinpath("configs/own-data")
    names = sorted(x.name for x in source.iterdir() if x.name.endswith((".yaml", ".jsonl")))
    clash = [n for n in names if (directory / n).exists()]
    if clash:
        _fail(PersynError(f"{directory}: {', '.join(clash)} already there (choose another directory)"))
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(source.joinpath(name).read_bytes())
    console.print(
        f"wrote {', '.join(str(directory / n) for n in names)}\n"
        f"next: persyn estimate {directory / 'run.yaml'}; persyn run {directory / 'run.yaml'}",
        highlight=False,
    )


@app.command()
def synthesize(config: Path = ConfigArg, output_dir: Path | None = OutputOpt) -> None:
    """Write new prompts from the seed examples with the config's generator (``synthesis``):
    OUTPUT_DIR/synthetic/prompts.jsonl, read by ``prompts.source: synthetic``. With
    ``generator: montessori`` the generator is first tuned to the student (OUTPUT_DIR/montessori).
    Resumes."""
    with reported_errors():
        with _pipeline(config, output_dir) as p:
            s = p.synthesize()
        print_synthesis(s)
        console.print(f"prompts: {p.out / 'synthetic' / 'prompts.jsonl'} ({s.seconds:.0f} s)")


@app.command("train-generator")
def train_generator_cmd(
    config: Path = ConfigArg,
    output: Path = typer.Option(..., "--output", help="Where to save the generator model."),
    prompt_masking: str = typer.Option(
        "off", "--prompt-masking", help="off: loss on prompt and response (NOMAD); on: response only."
    ),
    base_model: str | None = typer.Option(None, "--model", help="Model to fine-tune (default: the student)."),
    epochs: float = typer.Option(3.0, help="Training epochs over the seed examples."),
    learning_rate: float | None = typer.Option(None, "--lr"),
    seed: int = typer.Option(0),
) -> None:
    """Fine-tune a generator on the seed (prompt, response) pairs of ``synthesis.seeds``
    (NOMAD): then use it as ``synthesis.model`` with ``generator: nomad``."""
    from persyn.prompts import load_prompts
    from persyn.synthesis.nomad import train_generator
    from persyn.training.sft_config import SFTSettings

    with reported_errors():
        if prompt_masking not in ("on", "off"):
            raise InputError(f"--prompt-masking must be 'on' or 'off', got {prompt_masking!r}")
        cfg = command_config(config, None)
        from persyn.stages.synthesize import synthesis_config

        syn = synthesis_config(cfg)
        seeds, _ = load_prompts(syn.seeds, cfg.seed, require_answer=False)
        model = base_model or cfg.student.model
        settings = SFTSettings(epochs=epochs, learning_rate=learning_rate, seed=seed)
        info = train_generator(
            seeds, model, output, settings, prompt_masking=prompt_masking == "on", header=syn.header
        )
        console.print(
            f"generator: {output} ({info['n_trained']} seed examples, {info['steps']} steps, "
            f"final loss {info['final_loss']:.3f}, prompt masking {prompt_masking})"
        )


@app.command()
def influence(
    config: Path = ConfigArg,
    examples: Path = typer.Option(..., "--examples", help="A persyn dataset JSONL of the examples to probe."),
    output: Path = typer.Option(..., "--output", help="Where influence.jsonl and the warm-up go."),
) -> None:
    """Local data influence (Montessori-Instruct) of each example on the student, with its loss
    and learnability (``influence`` section: warm-up and reference sets). Resumes."""
    from persyn.montessori.influence import run_influence

    with reported_errors():
        cfg = command_config(config, None)
        s = run_influence(cfg, examples, output, log=console.print)
        console.print(
            f"influence: {s['examples']} examples ({s['failed']} failed, {s['probed_now']} probed now), "
            f"{s['helpful']} helpful / {s['harmful']} harmful; reference loss {s['reference_loss']:.4f} "
            f"over {s['reference_examples']} examples; {s['seconds_per_example']} s per example "
            f"→ {output / 'influence.jsonl'}"
        )


@app.command("adapt-generator")
def adapt_generator_cmd(
    config: Path = ConfigArg,
    influence_dir: Path = typer.Option(..., "--influence", help="A `persyn influence` output directory."),
    examples: Path = typer.Option(..., "--examples", help="The examples file that was probed."),
    output: Path = typer.Option(..., "--output", help="Where to save the tuned generator."),
    model: str | None = typer.Option(None, "--model", help="Generator to tune (default: synthesis.model)."),
    signal: str = typer.Option("influence", help="influence | loss | learnability"),
    rule: str = typer.Option("auto", help="Pairing rule: auto | sign | rank."),
    method: str = typer.Option("full", help="full | lora"),
    learning_rate: float = typer.Option(1e-6, "--lr"),
    beta: float = typer.Option(0.1),
    epochs: float = typer.Option(1.0),
    seed: int = typer.Option(0),
) -> None:
    """Montessori-Instruct: DPO of the generator on preference pairs of its own outputs, chosen
    and rejected by their signal within each generation request (``group``). Each example line
    needs ``request`` (the generator's prompt); its output is ``generated`` (default: the
    example's user turn, the instruction it wrote)."""
    from persyn.montessori.adapt import adapt_generator
    from persyn.training.dpo_config import DPOSettings

    with reported_errors():
        cfg = command_config(config, None)
        generator = model or (
            cfg.synthesis.model.model if cfg.synthesis and cfg.synthesis.model.model else None
        )
        if generator is None:
            raise InputError("--model is needed when the config has no synthesis.model")
        settings = DPOSettings(
            method=method, learning_rate=learning_rate, beta=beta, epochs=epochs, seed=seed
        )
        info = adapt_generator(examples, influence_dir, generator, output, settings, signal, rule)
        note = info["note"]
        console.print(
            f"pairs: {note['pairs']} by rule '{note['rule']}' ({note['groups_with_pairs']} of "
            f"{note['groups']} groups); DPO {info['steps']} steps in {info['seconds']:.0f} s, "
            f"last margin {info['margins'][-1] if info['margins'] else float('nan'):.4f} → {output}"
        )


@app.command()
def calibrate(
    config: Path = ConfigArg,
    output_dir: Path | None = OutputOpt,
    executor: Executor | None = ExecutorOpt,
    ray_address: str | None = RayAddressOpt,
) -> None:
    """Stages 1-2 (calibrate, score): every teacher answers the calibration prompts; their
    responses are scored for quality and learnability."""
    with reported_errors():
        with _pipeline(config, output_dir, executor, ray_address) as p:
            p.run_stages(through="score")
        console.print(f"calibration done: {p.new_generations} new generation(s)")


@app.command("train-router")
def train_router_cmd(config: Path = ConfigArg, output_dir: Path | None = OutputOpt) -> None:
    """Stage 4 (train_router): fit the router (router.kind; auto cross-validates the kinds against
    the Oracle and keeps one) on the calibration rewards (stage 3, Eq. 2)."""
    with reported_errors():
        with _pipeline(config, output_dir) as p:
            ev = p.train_router()
        print_router_eval(ev)
        console.print(f"router saved to {p.out / 'router'}")


@app.command()
def route(
    config: Path = ConfigArg,
    output_dir: Path | None = OutputOpt,
    router: Path | None = typer.Option(None, help="A saved router directory (default: OUTPUT_DIR/router)."),
) -> None:
    """Stage 5 (route): route every non-calibration prompt to one teacher."""
    with reported_errors():
        with _pipeline(config, output_dir) as p:
            assigned = p.route(router)
        counts: dict[str, int] = {}
        for t in assigned.values():
            counts[t] = counts.get(t, 0) + 1
        console.print(f"routed {len(assigned)} prompt(s): {counts}")


@app.command()
def generate(
    config: Path = ConfigArg,
    output_dir: Path | None = OutputOpt,
    executor: Executor | None = ExecutorOpt,
    ray_address: str | None = RayAddressOpt,
) -> None:
    """Stage 6 (generate): only the routed teacher answers each routed prompt (with verify:, a
    failed answer goes to the next teacher)."""
    with reported_errors():
        with _pipeline(config, output_dir, executor, ray_address) as p:
            p.generate()
        console.print(f"generation done: {p.new_generations} new generation(s)")


@app.command()
def export(config: Path = ConfigArg, output_dir: Path | None = OutputOpt) -> None:
    """Stage 7 (export): write dataset.jsonl, routing.jsonl, failed.jsonl, the dataset card and
    summary.json."""
    with reported_errors():
        with _pipeline(config, output_dir) as p:
            summary = p.export()
        print_summary(summary, p.out)


@app.command("select")
def select_cmd(
    config: Path = ConfigArg,
    strategy: list[str] = typer.Option(
        ...,
        "--strategy",
        "-s",
        help=", ".join(STRATEGIES),  # the plug-in table, so a new strategy is listed
    ),
    verified: bool = typer.Option(
        False,
        "--verified",
        help="Only the lines whose quality passes the check (verify.pass_quality), into "
        "OUTPUT_DIR/strategies/NAME-verified; Generate-then-Select strategies re-pick among the "
        "passing responses. Nothing is generated beyond what the strategy needs.",
    ),
    executor: Executor | None = ExecutorOpt,
    ray_address: str | None = RayAddressOpt,
) -> None:
    """Build a selection strategy's dataset into OUTPUT_DIR/strategies/NAME (repeatable)."""

    with reported_errors():
        with _pipeline(config, None, executor, ray_address) as p:
            for name in strategy:
                summary = p.build_strategy(name, verified=verified)
                print_strategy_summary(summary, p.out / "strategies" / summary.strategy)


@app.command("estimate")
def estimate_cmd(config: Path = ConfigArg, output_dir: Path | None = OutputOpt) -> None:
    """Generations, tokens and cost of Route-then-Generate vs Generate-then-Select, before
    generating (from the calibration responses once they exist, from max_new_tokens before)."""
    from persyn.estimate import estimate

    with reported_errors():
        with _pipeline(config, output_dir) as p:
            est = estimate(p)
    print_estimate(est)


@app.command()
def report(
    run_dir: Path = typer.Argument(
        ..., help="A run's output directory or config file, or an experiment's directory (or its records)."
    ),
    out: Path | None = typer.Option(
        None, "--output", "-o", "--out", help="HTML file (default RUN_DIR/report.html)."
    ),
    sample: int = typer.Option(8, help="Prompts shown with their chosen response."),
    seed: int = typer.Option(0, help="Seed of the sample."),
) -> None:
    """A self-contained HTML page for one run: summary, routing, scores, router vs Oracle. For an
    experiment's directory (results.csv, paired.csv): accuracy, paired differences with
    seed-aware and prompt-only intervals, per-task accuracy, validation choices and plots."""
    from persyn.report.experiment import is_experiment_dir, write_experiment_report
    from persyn.report.write import write_report

    with reported_errors():
        if run_dir.is_file():  # a run's config: its output directory
            run_dir = command_config(run_dir, None).output_dir
        if is_experiment_dir(run_dir) and not (run_dir / "summary.json").is_file():
            path = write_experiment_report(run_dir, out)
        else:
            path = write_report(run_dir, out, sample, seed)
    console.print(f"report: {path}")


@app.command()
def sft(
    dataset: Path = typer.Argument(..., help="A persyn dataset.jsonl."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Where the fine-tuned model goes."),
    model: str = typer.Option("smollm2-135m-instruct", help="The student: alias, HF id or local path."),
    method: str = typer.Option("full", help="full or lora."),
    epochs: float = typer.Option(2.0),
    learning_rate: float | None = typer.Option(None, "--lr", help="Default: 5e-5 full, 2e-4 LoRA."),
    batch_size: int = typer.Option(8),
    seed: int = typer.Option(0),
    prompt_template: str = typer.Option(
        DEFAULT_PROMPT_TEMPLATE,
        help="Base (no chat template) students only: as student.prompt_template.",
    ),
    dtype: str = typer.Option(
        "auto",
        help="auto | float32 | bfloat16 (bf16 autocast, fp32 master weights); auto: bf16 where the hardware has it.",
    ),
    max_steps: int | None = typer.Option(
        None, help="Stop after this many optimizer steps (overrides --epochs)."
    ),
    max_length: int = typer.Option(
        512, help="Tokens per example; longer ones lose the end of their response."
    ),
) -> None:
    """Fine-tune the student on a dataset (TRL SFTTrainer, loss on response tokens only)."""
    from pydantic import ValidationError

    from persyn.training.sft import sft as run_sft
    from persyn.training.sft_config import SFTSettings

    try:
        settings = SFTSettings(
            method=method,
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            seed=seed,
            dtype=dtype,
            max_steps=max_steps,
            max_length=max_length,
        )
    except ValidationError as err:
        from persyn.config import format_validation_error

        _fail(PersynError(format_validation_error(err, "persyn sft")))
    with reported_errors():
        info = run_sft(dataset, model, output_dir, settings, prompt_template=prompt_template)
    console.print(
        f"fine-tuned {model} on {info['n_examples']} examples: {info['steps']} step(s) in "
        f"{info['seconds']:.0f} s; training loss {info['train_loss']:.4f} (TRL's mean over the run; "
        f"last logged {info.get('final_loss') or float('nan'):.4f} at step {(info.get('loss_steps') or ['-'])[-1]}); "
        f"{info['precision']}: {info['dtype_reason']} → {output_dir}",
        highlight=False,
    )


@app.command("evaluate")
def evaluate_cmd(
    model: str = typer.Argument(..., help="Alias, HF id or local path (e.g. a persyn sft output)."),
    benchmark: str | None = typer.Option(
        None,
        "--benchmark",
        help="ifeval: IFEval's 541 prompts (or the first --size), checked by its rule checkers "
        "(needs the ifeval extra); its four numbers with Wilson intervals and per instruction type.",
    ),
    task: str = typer.Option("chain_sum", help="reasoning_gym task of the held-out set."),
    size: int | None = typer.Option(None, help="Held-out prompts (default 100; with --benchmark: all)."),
    seed: int = typer.Option(12345, help="Seed of the held-out draw (differs from training seeds)."),
    task_kwargs: str = typer.Option("{}", help="reasoning_gym task arguments as JSON."),
    prompts_file: Path | None = typer.Option(None, "--prompts", help="A JSONL file instead of a task."),
    train: list[Path] = typer.Option([], "--train", help="Training dataset(s) the set must not overlap."),
    max_new_tokens: int | None = typer.Option(None, help="Default 128 (512 with --benchmark ifeval)."),
    batch_size: int = typer.Option(32),
    out: Path | None = typer.Option(None, "--out", help="Write the per-item results (JSON)."),
    prompt_template: str = typer.Option(
        DEFAULT_PROMPT_TEMPLATE,
        help="Base (no chat template) models only: as student.prompt_template.",
    ),
    dtype: str = typer.Option(
        "auto", help="auto | float32 | bfloat16: the weights' dtype; auto: bf16 where the hardware has it."
    ),
) -> None:
    """Greedy accuracy of a model on a held-out verifiable set, with a Wilson 95% interval; or on
    a benchmark (`--benchmark ifeval`)."""
    from persyn.config import PromptsConfig
    from persyn.evaluate import evaluate, training_prompts, write_eval
    from persyn.prompts import load_prompts

    try:
        seen = [t for path in train for t in training_prompts(path)]
        if not train:
            console.print(
                "[yellow]warning:[/] no --train dataset given: the held-out set is not checked "
                "against training prompts",
                highlight=False,
            )
        if benchmark is not None:
            _evaluate_benchmark(
                benchmark, model, size, seen, batch_size, max_new_tokens, prompt_template, dtype, out
            )
            return
        if prompts_file is not None:
            pcfg = PromptsConfig(source="jsonl", path=prompts_file, size=size or 100)
        else:
            pcfg = PromptsConfig(
                source="reasoning_gym", task=task, size=size or 100, task_kwargs=json.loads(task_kwargs)
            )
        prompts, _ = load_prompts(pcfg, seed, require_answer=True)
        res = evaluate(
            model,
            prompts,
            train_prompts=seen,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens or 128,
            prompt_template=prompt_template,
            dtype=dtype,
        )
        if out is not None:
            write_eval(res, out)
    except json.JSONDecodeError as exc:
        _fail(PersynError(f"--task-kwargs: not JSON ({exc})"))
    except PersynError as exc:
        _fail(exc)
    console.print(
        f"{model}: accuracy {res.accuracy:.3f} ({res.correct}/{res.n}), "
        f"95% CI [{res.ci_low:.3f}, {res.ci_high:.3f}] ({res.dtype}: {res.dtype_reason})"
    )


BENCHMARKS = ("ifeval",)


def _evaluate_benchmark(
    name, model, size, seen, batch_size, max_new_tokens, prompt_template, dtype, out
) -> None:
    """``persyn evaluate --benchmark NAME``: run it, print its figures, write ``out``."""
    from persyn.evaluate import write_eval
    from persyn.evaluate_ifeval import evaluate_ifeval, ifeval_prompt_set

    if name not in BENCHMARKS:
        raise PersynError(f"--benchmark: unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)})")
    res = evaluate_ifeval(
        model,
        ifeval_prompt_set(size),
        train_prompts=seen,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens or 512,
        prompt_template=prompt_template,
        dtype=dtype,
    )
    if out is not None:
        write_eval(res, out)
    print_ifeval(res)


@app.command()
def experiment(
    config: Path = typer.Argument(..., help="Experiment configuration (YAML)."),
    scale: float = typer.Option(1.0, help="Multiply the prompt and evaluation set sizes."),
    output_dir: Path | None = OutputOpt,
    records: Path | None = typer.Option(
        None,
        help="Copy each finished evaluation record and the results files here as they come, and "
        "restore from here on a restart (e.g. a folder of a git checkout, for a run spanning machines).",
    ),
) -> None:
    """Every strategy × seed: build the dataset, fine-tune the student, evaluate; results.md."""
    import time

    from persyn.experiment.config import load_experiment
    from persyn.experiment.runner import Experiment

    def log(message: str) -> None:
        console.print(f"{time.strftime('%H:%M:%S')} {message}", highlight=False)

    with reported_errors():
        exp = load_experiment(config, scale, output_dir)
        Experiment(exp, log=log, records=records, source=str(config)).run()
    console.print(f"results: {exp.output_dir / 'results.md'}")


cache_app = typer.Typer(
    cls=_HelpGroup, help="Inspect or clear what the store of a run holds.", no_args_is_help=True
)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info(config: Path = ConfigArg, output_dir: Path | None = OutputOpt) -> None:
    """Stored responses per teacher (current settings vs stale) and scores per scorer."""
    with reported_errors():
        with _pipeline(config, output_dir) as p:
            info = p.cache_info()
    print_cache_info(info, p.out / "store.sqlite")


@cache_app.command("clear")
def cache_clear(
    config: Path = ConfigArg,
    output_dir: Path | None = OutputOpt,
    teacher: str | None = typer.Option(None, help="Only this teacher's responses and their scores."),
) -> None:
    """Delete stored responses and scores (one teacher's, or everything computed)."""
    with reported_errors():
        with _pipeline(config, output_dir) as p:
            n = p.cache_clear(teacher)
    console.print(f"deleted {n} stored response(s){f' of {teacher}' if teacher else ' and all scores'}")


batch_app = typer.Typer(
    cls=_HelpGroup,
    help="Batch files for a teacher (engine: openai): write the requests the run needs next, "
    "store the results (e.g. of `vllm run-batch`).",
    no_args_is_help=True,
)
app.add_typer(batch_app, name="batch")
TeacherOpt = typer.Option(..., "--teacher", "-t", help="The teacher's name in the config.")


@batch_app.command("export")
def batch_export(
    config: Path = ConfigArg,
    teacher: str = TeacherOpt,
    output: Path = typer.Option(..., "--output", "-o", help="The request file to write (JSONL)."),
) -> None:
    """Run until the first stage that needs TEACHER's responses, and write those requests to
    OUTPUT as batch request lines (`custom_id` = prompt id; the input of `vllm run-batch` and of
    the OpenAI Batch API) instead of sending them. Answer them, then `persyn batch import`.
    CONFIG is the config file or the run's output directory."""
    from persyn.engines.openai_batch import EXPORT_TO
    from persyn.runtime.batch_import import batch_teacher

    with reported_errors():
        cfg = command_config(config, None, Executor.local)  # the engines run in this process
        batch_teacher(cfg, teacher)
        EXPORT_TO[teacher] = output
        try:
            with open_pipeline(cfg) as p:
                try:
                    p.run()
                except BatchesInFlight as exc:
                    console.print(f"[bold]batch export:[/] {exc}", highlight=False)
                    return
        finally:
            EXPORT_TO.pop(teacher, None)
    console.print(
        f"nothing to export: the run needs no more responses of teacher '{teacher}' (it is complete)"
    )


@batch_app.command("import")
def batch_import(
    config: Path = ConfigArg,
    results: list[Path] = typer.Argument(..., help="Result files (JSONL; any order)."),
    teacher: str = TeacherOpt,
    output_dir: Path | None = OutputOpt,
) -> None:
    """Store a batch results file (`vllm run-batch`'s output, or the Batch API's output and
    error files) as TEACHER's responses; failed lines are failed items, retried by the next run.
    Then `persyn run` goes on as if the teacher had answered."""
    from persyn.runtime.batch_import import import_results

    with reported_errors():
        with _pipeline(config, output_dir) as p:
            p.prepare()
            counts = import_results(p.ctx, teacher, results)
    console.print(
        f"stored {counts['ok']} response(s) of teacher '{teacher}'"
        + (f", {counts['failed']} failed (the next run retries them)" if counts["failed"] else "")
    )
