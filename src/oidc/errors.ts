/**
 * Human wording for OAuth errors shown as pages (when the error cannot be returned to
 * the client, e.g. an unknown client or an unregistered redirect_uri). The library's
 * error_description is written for developers and safe to show; internal details
 * (the error's `error_detail`) are never rendered.
 */
const TITLES: Record<string, string> = {
  invalid_client: 'Unknown application',
  invalid_redirect_uri: 'Unregistered return address',
  invalid_request: 'Invalid request',
  access_denied: 'Access denied',
  server_error: 'Something went wrong',
  temporarily_unavailable: 'Temporarily unavailable',
  invalid_grant: 'Sign-in expired',
};

export function describeOAuthError(out: { error: string; error_description?: string }): { title: string; message: string } {
  const title = TITLES[out.error] ?? 'Sign-in could not continue';
  const description = out.error === 'server_error' ? 'An unexpected error occurred. Please try again later.' : out.error_description;
  return { title, message: `${description ?? 'The request could not be processed.'} (${out.error})` };
}
