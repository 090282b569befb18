/** A validated upstream login, parked between the interaction and the session it creates. */
export interface PendingUpstreamLogin {
  idp: string;
  issuer: string;
  sub: string;
  sid?: string | undefined;
  idToken: string;
  authTime: number;
  accountId: string;
}
