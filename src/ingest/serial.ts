/** Runs async functions one at a time, in call order (a promise-chain mutex). */
export class Serial {
  private tail: Promise<void> = Promise.resolve();

  /** Runs `fn` after everything queued before it has settled; a failure does not block later calls. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Settles when everything queued so far has settled. */
  idle(): Promise<void> {
    return this.tail;
  }
}
