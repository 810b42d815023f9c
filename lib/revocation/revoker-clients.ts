import { IAMClient } from "@aws-sdk/client-iam";
import { AssumeRoleCommand, type AssumeRoleCommandOutput, type STSClient } from "@aws-sdk/client-sts";
import { accountOf, revokerRoleArn } from "../domain/accounts.js";
import { InternalError, UpstreamUnavailableError } from "../domain/errors.js";

/** Temporary credentials, as an SDK client's `credentials` provider returns them. */
interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiration: Date;
}

/** Refresh assumed-role credentials this long before they expire. */
const REFRESH_MARGIN_MS = 5 * 60_000;

/** Options of {@link RevokerIamClients}. */
export interface RevokerIamClientsProps {
  /** The vending account: its roles are written with `home`, the function's own credentials. */
  readonly homeAccount: string;
  readonly home: IAMClient;
  /** Assumes the revoker role of every other account. */
  readonly sts: STSClient;
  /** `RoleSessionName` of the revoker sessions, in CloudTrail of the target account. @default "jitv-revocation" */
  readonly sessionName?: string;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** Builds the IAM client of a target account (tests inject). @default a new IAMClient with `maxAttempts: 1` */
  readonly makeClient?: (credentials: () => Promise<Credentials>, account: string) => IAMClient;
}

/**
 * IAM clients per account, for revocation across AWS accounts (CONTRACT.md section 6): a role of
 * the vending account is written with the function's own credentials; a role of another account
 * through that account's revoker role (`role/jitv/jitv-revoker`, created by the target-account
 * stack), assumed with STS and cached until five minutes before its credentials expire. Roles are
 * addressed by ARN, so a same-named role in the vending account is never touched by mistake.
 *
 * @example
 * const clients = new RevokerIamClients({ homeAccount, home: new IAMClient({ maxAttempts: 1 }), sts: new STSClient({}) });
 * const writer = new IamRolePolicyWriter({ client: clients.forRole });
 */
export class RevokerIamClients {
  readonly #props: RevokerIamClientsProps;
  readonly #clients = new Map<string, IAMClient>();
  readonly #now: () => Date;

  constructor(props: RevokerIamClientsProps) {
    this.#props = props;
    this.#now = props.now ?? (() => new Date());
  }

  /** The IAM client that may write to `roleArn`'s account. */
  readonly forRole = (roleArn: string): IAMClient => {
    const account = accountOf(roleArn);
    if (account === undefined) throw new InternalError("not an IAM role ARN");
    if (account === this.#props.homeAccount) return this.#props.home;
    let client = this.#clients.get(account);
    if (client === undefined) {
      const credentials = this.#assumed(revokerRoleArn(roleArn));
      client = this.#props.makeClient
        ? this.#props.makeClient(credentials, account)
        : new IAMClient({ maxAttempts: 1, credentials });
      this.#clients.set(account, client);
    }
    return client;
  };

  #assumed(roleArn: string): () => Promise<Credentials> {
    let cached: Credentials | undefined;
    return async () => {
      if (cached && cached.expiration.getTime() - this.#now().getTime() > REFRESH_MARGIN_MS) return cached;
      let out: AssumeRoleCommandOutput;
      try {
        out = await this.#props.sts.send(
          new AssumeRoleCommand({
            RoleArn: roleArn,
            RoleSessionName: this.#props.sessionName ?? "jitv-revocation",
            DurationSeconds: 900,
          }),
        );
      } catch (error) {
        throw new UpstreamUnavailableError(`could not assume the revoker role ${roleArn}`, { cause: error });
      }
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
        throw new UpstreamUnavailableError(`STS returned no credentials for the revoker role ${roleArn}`);
      }
      cached = {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        sessionToken: c.SessionToken,
        expiration: c.Expiration,
      };
      return cached;
    };
  }
}
