// The console's session: the HttpOnly cookie the server sets on login. The page never
// sees the cookie; it asks the server whether it holds a valid one.

/** 'valid', 'none' (log in), or 'disabled' (no operator.token on this gateway), with the server's message. */
export async function checkSession() {
  const response = await fetch('/api/operator/session', { credentials: 'same-origin', cache: 'no-store' });
  if (response.ok) return { state: 'valid' };
  const body = await response.json().catch(() => ({}));
  if (response.status === 503) return { state: 'disabled', message: body.message };
  return { state: 'none', message: body.message };
}

/** Logs in as `operator` with `token`; resolves to null on success or to the error message. */
export async function login(token, operator) {
  const response = await fetch('/api/operator/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token, operator }),
  });
  if (response.ok) return null;
  const body = await response.json().catch(() => ({}));
  if (response.status === 429) return 'Too many failed attempts from this address: wait a minute.';
  if (body.code === 'operator_token_invalid') return 'Wrong operator token.';
  return body.message || `Login failed (HTTP ${response.status}).`;
}

export async function logout() {
  await fetch('/api/operator/session', { method: 'DELETE', credentials: 'same-origin' });
}
