// One error class per kind of failure a user can act on. Library code throws these;
// only src/cli/ turns them into an exit code and a message.

export class PmkvqError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A model folder, config.json or checkpoint file is missing, malformed or unsupported. */
export class CheckpointError extends PmkvqError {}

/** A config.json field is missing or describes an architecture we do not run. */
export class ConfigError extends PmkvqError {}

/** tokenizer.json / tokenizer_config.json / chat template problems. */
export class TokenizerError extends PmkvqError {}

/** A flag or argument value is invalid. */
export class UsageError extends PmkvqError {}

/** An input or output path cannot be read or written (missing, a folder, a file, permissions, disk full). */
export class FileError extends PmkvqError {}

/**
 * A pickle (inside a torch.save file) names a Python global outside pm-kvq's allow-list
 * (e.g. `posix.system`): refused when the name is read — nothing is imported, called or run.
 */
export class RefusedGlobalError extends FileError {
  constructor(message: string, readonly global: string) {
    super(message);
  }
}

/** Another process holds the lock of an output (file or folder). */
export class LockError extends PmkvqError {}

/** An output holds results made under other settings than this run's. */
export class SettingsMismatchError extends PmkvqError {}

/** The WebAssembly memory (or this machine's) cannot hold what was asked. */
export class OutOfMemoryError extends PmkvqError {}

/**
 * A kernel call does not fit the fixed layout its arguments travel in (e.g. more segments than
 * a tiled-attention plan's tables hold): a bug in the caller, not in the user's input.
 */
export class KernelLayoutError extends PmkvqError {}

/** The KV cache cannot hold the sequence within its memory budget (spec §3). */
export class KvBudgetError extends PmkvqError {
  constructor(message: string, readonly layer: number) {
    super(message);
  }
}

/** The code judge's runner (python3, or --judge-runner) cannot be started or broke before running any test. */
export class CodeRunnerError extends PmkvqError {}
