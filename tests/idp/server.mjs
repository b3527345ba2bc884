// A real OpenID Connect provider (panva's certified `oidc-provider`) for Atrium's test suite.
//
//   node server.mjs            (env: IDP_USERS_FILE, IDP_CLIENTS)
//
// Listens on an ephemeral loopback port and prints one JSON line {"issuer": ...} when ready.
// IDP_USERS_FILE is a JSON list of users, re-read at every login so a test can change a user's
// groups between two logins:
//   {"username", "password", "sub", "email", "email_verified", "name", "groups": [...],
//    "realm_access": {"roles": [...]}, "tamper_id_token": true}
// A user with tamper_id_token gets an ID token whose payload was altered after signing (a forged
// token an attacker would send), so the relying party must reject it.
// IDP_CLIENTS is a JSON list of oidc-provider client metadata.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const usersFile = process.env.IDP_USERS_FILE;
const clients = JSON.parse(process.env.IDP_CLIENTS || '[]');

function users() {
  return JSON.parse(fs.readFileSync(usersFile, 'utf8'));
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`);
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key-1', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'given_name', 'family_name'],
    groups: ['groups', 'realm_access'],
  },
  // Put the scope's claims in the ID token too (Keycloak, Entra and Okta do), so tests can read
  // groups from either the userinfo response or the ID token.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => false },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const user = users().find((u) => u.sub === sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        const claims = {
          sub,
          email: user.email,
          email_verified: user.email_verified ?? true,
          name: user.name,
          preferred_username: user.username,
        };
        if (user.groups) claims.groups = user.groups;
        if (user.realm_access) claims.realm_access = user.realm_access;
        return claims;
      },
    };
  },
});

// Forge the ID token of users marked tamper_id_token: change its payload after it was signed.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== '/token' || !ctx.body || typeof ctx.body !== 'object' || !ctx.body.id_token) return;
  const [header, payload, signature] = ctx.body.id_token.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  const user = users().find((u) => u.sub === claims.sub);
  if (!user || !user.tamper_id_token) return;
  claims.groups = ['atrium-admins'];
  const forged = Buffer.from(JSON.stringify(claims)).toString('base64url');
  ctx.body = { ...ctx.body, id_token: `${header}.${forged}.${signature}` };
});

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, 'Error', '<p>Unknown interaction</p>');
  const { prompt, params, session } = details;
  if (req.method === 'GET' && prompt.name === 'login') {
    return page(res, 200, 'Sign in', `
      <h1>Test IdP sign-in</h1>
      <form method="post" action="/interaction/${uid}/login">
        <input name="login" autocomplete="username"><input name="password" type="password">
        <button type="submit">Sign in</button>
      </form>`);
  }
  if (req.method === 'GET' && prompt.name === 'consent') {
    return page(res, 200, 'Consent', `
      <h1>Allow ${escapeHtml(params.client_id)} to read ${escapeHtml(params.scope)}?</h1>
      <form method="post" action="/interaction/${uid}/confirm"><button type="submit">Allow</button></form>`);
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const user = users().find((u) => u.username === form.get('login'));
    if (!user || user.password !== form.get('password')) {
      return page(res, 401, 'Sign in', '<p class="error">Wrong username or password</p>');
    }
    return provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    if (missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return page(res, 400, 'Error', `<p>Unexpected ${escapeHtml(req.method)} for prompt ${escapeHtml(prompt.name)}</p>`);
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  const match = /^\/interaction\/([^/?]+)(?:\/(login|confirm))?(?:\?.*)?$/.exec(req.url);
  if (!match) return callback(req, res);
  try {
    await interaction(req, res, match[1], match[2]);
  } catch (err) {
    page(res, 500, 'Error', `<p>${escapeHtml(err.message)}</p>`);
  }
});

process.stdout.write(`${JSON.stringify({ issuer })}\n`);
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
