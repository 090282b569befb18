/**
 * Reading HTML form posts on our own routes. oidc-provider parses its own bodies, so
 * there is no global body parser (see the notes on mounting); each route that takes a
 * form calls this, with a small size limit.
 */
import type { Context } from 'koa';
import { AppError } from '../errors.ts';

const FORM_LIMIT_BYTES = 16 * 1024;

export async function readForm(ctx: Context, limit = FORM_LIMIT_BYTES): Promise<URLSearchParams> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new AppError({ code: 'unsupported_media_type', status: 415, message: 'Expected a form submission.' });
  }
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return new URLSearchParams(text);
}

function tooLarge(): AppError {
  return new AppError({ code: 'payload_too_large', status: 413, message: 'The form submission is too large.' });
}
