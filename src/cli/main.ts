// The `pmkvq` command: parses flags, runs one command, turns errors into exit codes.

import { Command, CommanderError } from "commander";
import { PmkvqError } from "../errors.js";
import { describeFsError, isFsError } from "../util/fs-errors.js";
import { normalizeArgv } from "./args.js";
import { allocateCommand, runAllocate } from "./allocate.js";
import { calibrateCommand, runCalibrate } from "./calibrate.js";
import { chatCommand, runChat } from "./chat.js";
import { demoCommand, runDemoCommand } from "./demo.js";
import { evalCommand, runEvalCommand } from "./eval.js";
import { frontierCommand, runFrontierCommand } from "./frontier.js";
import { generateCommand, runGenerate } from "./generate.js";
import { importOriginalCommand, runImportOriginal } from "./import-original.js";
import { judgeCommand, runJudge } from "./judge.js";
import { runTrain, trainCommand } from "./train.js";
import { maxKeysCommand, runMaxKeys } from "./max-keys.js";
import { rotateKvCalibCommand, runRotateKvCalib } from "./rotatekv-calib.js";
import { runSearchScales, searchScalesCommand } from "./search-scales.js";
import { runSensitivity, sensitivityCommand } from "./sensitivity.js";

export type Handlers = {
  generate: Parameters<typeof generateCommand>[0];
  chat: Parameters<typeof chatCommand>[0];
  sensitivity: Parameters<typeof sensitivityCommand>[0];
  maxKeys: Parameters<typeof maxKeysCommand>[0];
  searchScales: Parameters<typeof searchScalesCommand>[0];
  allocate: Parameters<typeof allocateCommand>[0];
  calibrate: Parameters<typeof calibrateCommand>[0];
  importOriginal: Parameters<typeof importOriginalCommand>[0];
  rotatekvCalib: Parameters<typeof rotateKvCalibCommand>[0];
  eval: Parameters<typeof evalCommand>[0];
  judge: Parameters<typeof judgeCommand>[0];
  train: Parameters<typeof trainCommand>[0];
  demo: Parameters<typeof demoCommand>[0];
  frontier: Parameters<typeof frontierCommand>[0];
};

export const defaultHandlers: Handlers = {
  generate: runGenerate,
  chat: runChat,
  sensitivity: runSensitivity,
  maxKeys: runMaxKeys,
  searchScales: runSearchScales,
  allocate: runAllocate,
  calibrate: runCalibrate,
  importOriginal: runImportOriginal,
  rotatekvCalib: runRotateKvCalib,
  eval: runEvalCommand,
  judge: runJudge,
  train: runTrain,
  demo: runDemoCommand,
  frontier: runFrontierCommand,
};

export function buildProgram(handlers: Handlers = defaultHandlers): Command {
  const program = new Command("pmkvq")
    .description("PM-KVQ: long chain-of-thought LLMs with a progressive mixed-precision KV cache (TypeScript)")
    .showHelpAfterError("(run with --help for usage)")
    .configureHelp({ showGlobalOptions: true });
  program.addCommand(generateCommand(handlers.generate));
  program.addCommand(chatCommand(handlers.chat));
  program.addCommand(sensitivityCommand(handlers.sensitivity));
  program.addCommand(allocateCommand(handlers.allocate));
  program.addCommand(maxKeysCommand(handlers.maxKeys));
  program.addCommand(searchScalesCommand(handlers.searchScales));
  program.addCommand(calibrateCommand(handlers.calibrate));
  program.addCommand(importOriginalCommand(handlers.importOriginal));
  program.addCommand(rotateKvCalibCommand(handlers.rotatekvCalib));
  program.addCommand(evalCommand(handlers.eval));
  program.addCommand(judgeCommand(handlers.judge));
  program.addCommand(trainCommand(handlers.train));
  program.addCommand(demoCommand(handlers.demo));
  program.addCommand(frontierCommand(handlers.frontier));
  return program;
}

/** Parse argv (without node and script) into a command name and its flags, without running it. */
export async function parseCLI(argv: string[]): Promise<{ command: string; flags: Record<string, unknown> }> {
  let result: { command: string; flags: Record<string, unknown> } | null = null;
  const capture = (command: string) => (flags: object) => {
    result = { command, flags: flags as Record<string, unknown> };
  };
  const program = buildProgram({
    generate: capture("generate"),
    chat: capture("chat"),
    sensitivity: capture("sensitivity"),
    maxKeys: capture("max-keys"),
    searchScales: capture("search-scales"),
    allocate: capture("allocate"),
    calibrate: capture("calibrate"),
    importOriginal: capture("import-original"),
    rotatekvCalib: capture("rotatekv-calib"),
    eval: capture("eval"),
    judge: capture("judge"),
    train: capture("train"),
    demo: capture("demo"),
    frontier: capture("frontier"),
  });
  program.exitOverride();
  for (const c of program.commands) c.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  program.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  await program.parseAsync(normalizeArgv(argv), { from: "user" });
  if (!result) throw new Error("no command given");
  return result;
}

/** The one line a user sees for an error, and the exit code (2: the user can fix it, 70: a bug). */
export function errorReport(e: unknown): { message: string; code: number } {
  if (e instanceof PmkvqError) return { message: `pmkvq: ${e.message}`, code: 2 };
  if (isFsError(e)) return { message: `pmkvq: ${e.path ?? "a file"}: cannot ${e.syscall} (${describeFsError(e)})`, code: 2 };
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return { message: `pmkvq: internal error (a bug; please report it, with PMKVQ_DEBUG=1 for the stack): ${text}`, code: 70 };
}

// Ctrl-C and kill end the process at once, with the default signal action: long commands run
// synchronous loops (training, generation), so a JavaScript signal handler would only run once
// the work was done — the process seemed to ignore them. What a handler would have cleaned up is
// handled where it is read: an output lock whose holder is gone is taken over (util/lock.ts),
// and every output file is written atomically or appended line by line.

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  for (const c of program.commands) c.exitOverride();
  try {
    await program.parseAsync(normalizeArgv(argv), { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    const r = errorReport(e);
    process.stderr.write(r.message + "\n");
    if (r.code === 70 && process.env.PMKVQ_DEBUG) process.stderr.write(`${(e as Error)?.stack ?? e}\n`);
    return r.code;
  }
}
