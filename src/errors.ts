/**
 * Error classes. The CLI maps them to exit codes: a `UserError` (bad graph, bad checkpoint, bad
 * flags) exits 2 with its message; anything else is an internal error and exits 1.
 */
export class UserError extends Error {
  override name = 'UserError';
}

/** A shape or dtype problem found while a graph is traced. */
export class GraphError extends UserError {
  override name = 'GraphError';
}

/** A checkpoint that cannot be read or does not match the graph. */
export class CheckpointError extends UserError {
  override name = 'CheckpointError';
}
