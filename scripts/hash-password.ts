/**
 * Prints a scrypt hash for `passwordHash` in the config file.
 * Usage: npm run --silent hash-password   (then type the password; it is not echoed)
 *    or: printf '%s' "$PASSWORD" | npm run --silent hash-password
 */
import { createInterface } from 'node:readline';
import { hashPassword } from '../src/accounts/passwords.ts';

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    let data = '';
    for await (const chunk of process.stdin) data += String(chunk);
    return data.replace(/\r?\n$/, '');
  }
  process.stderr.write('Password: ');
  process.stdin.setRawMode(true);
  const rl = createInterface({ input: process.stdin });
  return new Promise((resolve) => {
    let value = '';
    process.stdin.on('data', (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          process.stdin.setRawMode(false);
          rl.close();
          process.stderr.write('\n');
          resolve(value);
          return;
        }
        if (ch === '\u0003') process.exit(130);
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    });
  });
}

const password = await readPassword();
if (password.length < 8) {
  process.stderr.write('The password must be at least 8 characters.\n');
  process.exit(2);
}
process.stdout.write(`${await hashPassword(password)}\n`);
process.exit(0);
