/**
 * CPU profiles of exactly the measured part of a run: the servers are started with
 * --inspect on a free port, and the V8 profiler is started and stopped over the
 * inspector protocol around each measurement (BENCH_CPU_PROF). Start-up, warm-up and
 * token minting stay out of the profile.
 */

export interface ProfilerSession {
  start(): Promise<void>;
  /** Stop and return the profile (the .cpuprofile JSON). */
  stop(): Promise<unknown>;
  close(): void;
}

export async function connectProfiler(webSocketUrl: string): Promise<ProfilerSession> {
  const socket = new WebSocket(webSocketUrl);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot connect to the inspector at ${webSocketUrl}`)), { once: true });
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
    if (message.id === undefined) return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error) waiter?.reject(new Error(message.error.message));
    else waiter?.resolve(message.result);
  });
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: 200 });
  return {
    start: async () => {
      await send('Profiler.start');
    },
    stop: async () => ((await send('Profiler.stop')) as { profile: unknown }).profile,
    close: () => socket.close(),
  };
}
