export { type ChangeOptions, type MemberView, Membership, MembershipError, type MembershipTarget, type MembershipView, type ReconfigurableNode } from "./membership.js";
