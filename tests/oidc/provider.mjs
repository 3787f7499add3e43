// A real OpenID Connect provider (the npm package oidc-provider) on loopback,
// for the portal login tests (tests/test_portal_login*.py).  Not for production.
//
// Environment:
//   OIDC_PORT            port to listen on (0: any free port)
//   OIDC_REDIRECT_URIS   comma-separated redirect URIs of the test client
//   OIDC_ACCOUNTS_FILE   JSON file {"<login>": {<claims>}}: who may sign in, and their
//                        claims (read at every sign-in, so a test may add accounts)
//   OIDC_CLIENT_SECRET   the test client's secret
// Prints one JSON line {"issuer": ...} on stdout once it listens.
//
// POST /__test/skew?seconds=N shifts this process's clock by N seconds (the
// expired id_token test: tokens issued "an hour ago").
import http from 'node:http';
import fs from 'node:fs';
import Provider from 'oidc-provider';

const realNow = Date.now;
let skewSeconds = 0;
Date.now = () => realNow() + skewSeconds * 1000;

const accounts = () => JSON.parse(fs.readFileSync(process.env.OIDC_ACCOUNTS_FILE, 'utf8'));
const redirectUris = (process.env.OIDC_REDIRECT_URIS || '').split(',').filter(Boolean);
const postLogoutUris = (process.env.OIDC_POST_LOGOUT_URIS || '').split(',').filter(Boolean);

const server = http.createServer();
server.listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'ce-hours',
      client_secret: process.env.OIDC_CLIENT_SECRET || 'ce-test-secret',
      redirect_uris: redirectUris,
      post_logout_redirect_uris: postLogoutUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    claims: {
      openid: ['sub'],
      profile: ['name', 'id_card', 'phone_number', 'org_name', 'credit_code'],
    },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['ce-test-cookie-key'] },
    async findAccount(ctx, id) {
      const known = accounts();
      if (!Object.prototype.hasOwnProperty.call(known, id)) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...known[id] }; } };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  const handler = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/__test/skew')) {
      skewSeconds = Number(new URL(req.url, issuer).searchParams.get('seconds') || 0);
      res.end(JSON.stringify({ skew: skewSeconds }));
      return;
    }
    handler(req, res);
  });
  console.log(JSON.stringify({ issuer }));
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
// The test process holds our stdin: when it ends (even killed), so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
