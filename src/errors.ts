/**
 * One error model. An AppError carries a machine code, the HTTP status, a message safe
 * to show, and a private detail that only goes to logs. Protocol endpoints speak OAuth
 * errors (oidc-provider's own classes), the admin API speaks `{error, message, field?}`
 * JSON, and pages show the public message only.
 */
export class AppError extends Error {
  override readonly name = 'AppError';
  readonly code: string;
  readonly status: number;
  readonly publicMessage: string;
  readonly detail: string | undefined;
  readonly field: string | undefined;

  constructor(init: { code: string; status: number; message: string; detail?: string; field?: string; cause?: unknown }) {
    super(init.detail ? `${init.message} (${init.detail})` : init.message, { cause: init.cause });
    this.code = init.code;
    this.status = init.status;
    this.publicMessage = init.message;
    this.detail = init.detail;
    this.field = init.field;
  }
}

export const notFound = (what: string, field?: string) =>
  new AppError({ code: 'not_found', status: 404, message: `${what} not found`, ...(field ? { field } : {}) });

export const conflict = (message: string, field: string) => new AppError({ code: 'conflict', status: 409, message, field });

export const badRequest = (message: string, field?: string) =>
  new AppError({ code: 'invalid_request', status: 400, message, ...(field ? { field } : {}) });

export const preconditionFailed = () =>
  new AppError({ code: 'precondition_failed', status: 412, message: 'the resource was changed by someone else; fetch it again and retry' });
