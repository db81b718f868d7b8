export { type ChangeOptions, type MemberOptions, type MemberView, Membership, MembershipError, type MembershipTarget, type MembershipView, type ReconfigurableNode } from "./membership.js";
