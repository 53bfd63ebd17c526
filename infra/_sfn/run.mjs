// Runs one execution of a state machine definition with aws-local-stepfunctions,
// every Task state answered by the Go test that started this script
// (infra/sfn_test.go): the Task's effective input is POSTed to
// <endpoint>/task as {"state", "input"}, and the answer is the Task's result
// ({"output": ...}) or the error a Lambda function would report
// ({"errorType", "errorMessage"}).
//
// stdin:  {"definition": {...ASL...}, "input": ..., "endpoint": "http://127.0.0.1:PORT",
//          "retryPauseMs": 10, "context": {...}, "waitMs": {"<Wait state>": 0}}
//         context (optional) is merged into the execution's Context Object, as
//         Step Functions would fill it ({"Execution": {"Id": ..., "Name": ...}});
//         Execution.Input and Execution.StartTime are always the run's own
//         (an inline Map's iteration has a StartTime of its own here, where
//         Step Functions gives it the execution's).
//         waitMs (optional) makes the Wait states named wait that many
//         milliseconds instead of what they say (aws-local-stepfunctions'
//         waitTimeOverrides); every other Wait waits as synthesized.
// stdout: {"status": "SUCCEEDED", "output": ...} or {"status": "FAILED", "error", "cause"},
//         and "events": the execution's Retried/Caught/Failed state events.
//
// aws-local-stepfunctions runs Map states with an ItemProcessor, but not a
// Distributed Map's ItemReader, ItemBatcher or ToleratedFailurePercentage.
// Such a Map state is stood in for by a Task state of the same name that
// keeps every field the interpreter applies around a state (InputPath,
// ResultSelector, ResultPath, OutputPath, Retry, Catch, Next/End) as
// synthesized, and whose handler does what the Map Run does:
//   1. evaluates the ItemReader's Parameters and the ItemBatcher's BatchInput
//      against the state's input (with aws-local-stepfunctions itself, as a
//      Pass state's Parameters);
//   2. asks the Go test for the batches (<endpoint>/itemreader): it reads the
//      object the ItemReader names from the local S3 server and batches its
//      items as the ItemBatcher would (MaxItemsPerBatch, BatchInput);
//   3. runs the synthesized ItemProcessor in aws-local-stepfunctions once per
//      batch, as Step Functions runs child executions, at most MaxConcurrency
//      at a time, and fails with States.ExceedToleratedFailureThreshold when
//      more than ToleratedFailurePercentage of them failed.
// An inline Map runs as synthesized, its iterations' Task states answered
// like the others.
// Everything else runs as synthesized.

// aws-local-stepfunctions 3 needs Node 22's Promise.withResolvers; Node 20
// lacks it.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const { StateMachine } = await import('aws-local-stepfunctions');

const readStdin = async () => {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
};

const req = await readStdin();
const endpoint = req.endpoint;
const pause = req.retryPauseMs ?? 10;

// A Lambda error as Step Functions reports it for a Lambda Task: Error is
// the function's errorType, Cause the function's error document as JSON.
class LambdaError extends Error {
  constructor(errorType, errorMessage) {
    super(JSON.stringify({ errorMessage, errorType }));
    this.name = errorType;
  }
}

const post = async (path, body) => {
  const res = await fetch(endpoint + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}: ${text}`);
  return JSON.parse(text);
};

const task = (state) => async (input) => {
  const out = await post('/task', { state, input });
  if (out.errorType) throw new LambdaError(out.errorType, out.errorMessage);
  return out.output;
};

// evaluate applies a Parameters-style template to input.
const evaluate = async (template, input) => {
  const sm = new StateMachine({ StartAt: 'T', States: { T: { Type: 'Pass', Parameters: template, End: true } } });
  return sm.run(input).result;
};

const events = [];
const collect = async (log) => {
  for await (const e of log) {
    if (['StateRetried', 'StateCaught', 'StateFailed', 'MapIterationFailed'].includes(e.type)) {
      events.push({ type: e.type, state: e.state?.name ?? e.parentState?.name, error: e.Error, attempt: e.retry?.attempt });
    }
  }
};

// Overrides for every Task state of a (sub)definition, and of the inline
// Maps' iterations in it (aws-local-stepfunctions passes the overrides on
// to them, by state name), Retry pauses shortened.
const overridesFor = (states, out = { taskResourceLocalHandlers: {}, retryIntervalOverrides: {} }) => {
  for (const [name, s] of Object.entries(states)) {
    if (s.Type === 'Task') out.taskResourceLocalHandlers[name] = task(name);
    if (s.Retry) out.retryIntervalOverrides[name] = pause;
    const processor = s.ItemProcessor ?? s.Iterator;
    if (s.Type === 'Map' && !s.ItemReader && processor) overridesFor(processor.States, out);
  }
  return out;
};

const distributedMap = (name, map) => async (input) => {
  const reader = map.ItemReader;
  const params = await evaluate(reader.Parameters, input);
  const batchInput = map.ItemBatcher?.BatchInput ? await evaluate(map.ItemBatcher.BatchInput, input) : undefined;
  const { batches } = await post('/itemreader', {
    state: name,
    resource: reader.Resource,
    readerConfig: reader.ReaderConfig,
    parameters: params,
    maxItemsPerBatch: map.ItemBatcher?.MaxItemsPerBatch ?? 0,
    batchInput,
  });
  const processor = new StateMachine(map.ItemProcessor, { validationOptions: { noValidate: true } });
  const overrides = overridesFor(map.ItemProcessor.States);
  const limit = map.MaxConcurrency || batches.length || 1;
  const results = new Array(batches.length);
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const i = next++;
      const exec = processor.run(batches[i], { overrides });
      const logs = collect(exec.eventLogs);
      try {
        results[i] = await exec.result;
      } catch (err) {
        failed++;
        const cause = err.cause ?? err;
        events.push({ type: 'ChildExecutionFailed', state: name, error: cause.name, index: i });
      }
      await logs;
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, Math.max(batches.length, 1)) }, worker));
  const tolerated = map.ToleratedFailurePercentage ?? 0;
  if (batches.length > 0 && (failed * 100) / batches.length > tolerated) {
    const e = new Error(`${failed} of ${batches.length} child executions failed, more than ${tolerated}%`);
    e.name = 'States.ExceedToleratedFailureThreshold';
    throw e;
  }
  return results.filter((r) => r !== undefined);
};

const definition = structuredClone(req.definition);
const { taskResourceLocalHandlers, retryIntervalOverrides } = overridesFor(definition.States);
const keep = ['InputPath', 'ResultSelector', 'ResultPath', 'OutputPath', 'Retry', 'Catch', 'Next', 'End', 'Comment'];
for (const [name, s] of Object.entries(definition.States)) {
  if (s.Type === 'Map' && s.ItemReader) {
    const standIn = { Type: 'Task', Resource: 'arn:aws:states:::local:distributed-map' };
    for (const k of keep) if (k in s) standIn[k] = s[k];
    definition.States[name] = standIn;
    taskResourceLocalHandlers[name] = distributedMap(name, s);
    if (s.Retry) retryIntervalOverrides[name] = pause;
  }
}
// Node's timers hold at most 2^31-1 ms (24.8 days); a longer execution
// timeout would fire at once.
if (definition.TimeoutSeconds * 1000 > 2 ** 31 - 1) delete definition.TimeoutSeconds;

const sm = new StateMachine(definition, { validationOptions: { checkArn: false } });
const exec = sm.run(req.input, {
  overrides: { taskResourceLocalHandlers, retryIntervalOverrides, waitTimeOverrides: req.waitMs ?? {} },
  context: req.context,
});
const logs = collect(exec.eventLogs);
let out;
try {
  out = { status: 'SUCCEEDED', output: await exec.result };
} catch (err) {
  const cause = err.cause ?? err;
  out = { status: 'FAILED', error: cause.name, cause: cause.message };
}
await logs;
out.events = events;
process.stdout.write(JSON.stringify(out) + '\n');
