// Usage errors: a clear message on stderr and exit status 2 (as commander's own usage errors).
export class UsageError extends Error {}

export function usageError(message: string): UsageError {
  return new UsageError(message);
}
